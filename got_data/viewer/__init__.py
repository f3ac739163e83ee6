"""``got-data view DIR``: a local web app for spot-checking generated datasets."""
