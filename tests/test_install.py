"""The project as a package (pyproject.toml): a wheel built from a copy of this tree, installed into a
fresh venv outside the clone, gives `twochat-conformance`, which grades the reference from another
folder with only what the wheel installed (the suite, its cases, profiles and PROTOCOL.md, and the
reference's modules).

Kept quick and offline: the wheel is built by .venv's setuptools (pinned in requirements.txt,
--no-build-isolation), and the fresh venv has no pip of its own; .venv's pip installs the wheel
into it (--no-deps), and one .pth line lends it .venv's site-packages for the dependencies
(construct, pexpect, pytest). A .pth line adds a folder, not the .pth files in it, so .venv's
editable install of this clone does not come along.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from procs import ROOT

IGNORED = shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", ".*_cache", ".hypothesis", "*.egg-info")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv with the wheel installed."""
    top = tmp_path_factory.mktemp("install")
    source = top / "source"
    shutil.copytree(ROOT, source, ignore=IGNORED)  # a build writes build/ and *.egg-info beside its sources
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--disable-pip-version-check", "-w", str(top / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((top / "dist").glob("twochat_conformance-*.whl"))
    assert len(wheels) == 1, wheels
    venv = top / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                          "--quiet", "--disable-pip-version-check", str(wheels[0])],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv / "bin"


def run(bin_dir: Path, cwd: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "twochat-conformance"), *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_installed_modules_are_the_wheels(installed: Path, tmp_path: Path) -> None:
    """Nothing of the clone is imported: the suite, its data and the reference come from the venv."""
    probe = ("import chatserve, chatwire, conformance, vectors, venvboot\n"
             "from conformance import checks, cli, profile\n"
             "for m in (chatserve, chatwire, conformance, vectors, venvboot): print(m.__file__)\n"
             "print(cli.CASES / 'test_server.py'); print(checks.PROTOCOL); print(profile.DEFAULT)\n"
             "print(len(vectors.load()))\n")
    out = subprocess.run([str(installed / "python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    venv = installed.parent.resolve()
    for line in out[:-1]:
        path = Path(line).resolve()
        assert path.is_relative_to(venv) and path.is_file(), line
    assert int(out[-1]) > 0


def test_profile_check_and_list_from_another_folder(installed: Path, tmp_path: Path) -> None:
    checked = run(installed, tmp_path, "profile", "check", "default")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK: a framed submission is scored out of 100 points" in checked.stdout
    listed = run(installed, tmp_path, "list", "pair")
    assert listed.returncode == 0 and listed.stdout.startswith("P-"), listed.stdout + listed.stderr


def test_the_installed_command_grades_the_reference_server_from_another_folder(installed: Path, tmp_path: Path) -> None:
    graded = run(installed, tmp_path, "server", "-q", "--json", "server.json", "--",
                 str(installed / "python"), "-m", "chatserve", "{port}", "--handshake-timeout", "{handshake_timeout}")
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    last = graded.stdout.strip().splitlines()[-1]
    assert " passed, 0 failed, 0 warned" in last, last
    assert (tmp_path / "server.json").is_file()
