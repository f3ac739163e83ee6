"""Set-up stays in one place: the Docker image runs the same installer that reads the same lists."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def apt_list() -> list[str]:
    lines = (ROOT / "docker" / "apt-packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_uses_the_installer_and_its_package_list():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "bash install.sh --no-run" in dockerfile
    # The only packages named in the Dockerfile are the bootstrap ones the installer needs to start.
    named = set()
    for match in re.finditer(r"apt-get install[^\n]*?((?:\s+[a-z0-9][a-z0-9.+-]+)+)", dockerfile):
        named |= {w for w in match.group(1).split() if not w.startswith("-")}
    assert named <= {"python3", "python3-venv", "python3-pip"}, named
    assert not set(apt_list()) & named


def test_installer_reads_the_same_apt_list():
    installer = (ROOT / "install.sh").read_text()
    assert "docker/apt-packages.txt" in installer
    for needed in ("texlive-xetex", "chromium", "fonts-noto-cjk", "libcairo2"):
        assert needed in apt_list()


def test_python_and_js_dependencies_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["dependencies"]}
    assert {"ray", "pymupdf", "pdfminer.six", "matplotlib", "pyecharts", "playwright", "rdkit", "verovio", "rapidocr"} <= names
    assert project["scripts"]["got-data"] == "got_data.cli:main"
    assert (ROOT / "package-lock.json").is_file()
    assert '"echarts"' in (ROOT / "package.json").read_text()


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```", 2)[1]
    assert "install.sh" in first_block and "test.sh" in first_block
    assert "bash test.sh" in (ROOT / ".ci" / "run").read_text()
