"""The project as a package (pyproject.toml): a wheel built from a copy of this tree, installed into a
fresh venv outside the clone, gives `twochat-conformance`, which grades the reference from another
folder with only what the wheel installed (the suite, its cases, profiles and PROTOCOL.md, and the
reference's modules).

Kept quick: the wheel is built by .venv's setuptools (pinned in requirements.txt,
--no-build-isolation), and the fresh venvs have no pip of their own; .venv's pip installs into them.
The first gets the wheel alone (--no-deps, offline), and one .pth line lends it .venv's
site-packages for the dependencies (construct, pexpect, pytest); a .pth line adds a folder, not the
.pth files in it, so .venv's editable install of this clone does not come along. The second gets
the dependencies too, from the package index at requirements.txt's versions, as a course's `pip
install` would: a batch runs its runners in a sandbox that sees only the venv (skipped, saying why,
where no index can be reached).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from procs import ROOT

IGNORED = shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", ".*_cache", ".hypothesis", "*.egg-info")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of this tree (a build writes build/ and *.egg-info beside its sources)."""
    top = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, top / "source", ignore=IGNORED)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--disable-pip-version-check", "-w", str(top / "dist"), str(top / "source")],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((top / "dist").glob("twochat_conformance-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def fresh_venv(top: Path) -> Path:
    """A venv without pip (.venv's pip installs into it: --python); its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(top / "venv")], check=True, timeout=120)
    return top / "venv" / "bin" / "python"


def pip_install(python: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                           "--disable-pip-version-check", *argv], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv with the wheel installed, the dependencies lent by .venv."""
    python = fresh_venv(tmp_path_factory.mktemp("install"))
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = pip_install(python, "--no-deps", "--no-index", str(wheel))
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return python.parent


@pytest.fixture(scope="module")
def installed_whole(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv with the wheel and its dependencies, as `pip install` makes it
    (the versions requirements.txt pins): all of it inside the venv, where the sandbox sees it."""
    python = fresh_venv(tmp_path_factory.mktemp("install-whole"))
    pip = pip_install(python, "--constraint", str(ROOT / "requirements.txt"), str(wheel))
    if pip.returncode != 0:
        pytest.skip(f"pip could not install the dependencies here (no package index?): {pip.stderr[-500:]}")
    return python.parent


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


def test_the_installed_command_grades_a_class_in_its_sandbox_from_another_folder(installed_whole: Path,
                                                                                   tmp_path: Path) -> None:
    """batch from the wheel alone: its runner, its sandbox and the suite it runs there are the venv's."""
    sub = tmp_path / "class" / "reference"
    sub.mkdir(parents=True)
    for name in ("chatserve.py", "chatwire.py", "venvboot.py", "chatclient.c", "chatwire.c", "chatwire.h"):
        shutil.copy2(ROOT / name, sub / name)
    graded = run(installed_whole, tmp_path, "batch", "class", "--json", "class.json", "--timeout-scale", "2",
                 "--case", "S-LISTEN-1", "--case", "S-MSG-1", "--case", "C-PROMPT-1", timeout=300)
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    row = json.loads((tmp_path / "class.json").read_text())["submissions"][0]
    assert (row["status"], row["mode"]) == ("GRADED", "framed"), row["message"] + row["log"]
    verdicts = {cid: case["verdict"] for cid, case in row["results"].items()}
    assert verdicts and set(verdicts.values()) == {"PASS"}, verdicts


def test_nothing_edits_the_path_to_find_the_roots_modules() -> None:
    """The root's modules come from the installed project (./compileall: editable in .venv), so no
    file of bench/, fuzz/, tests/ or conformance/ puts the root on sys.path or PYTHONPATH (a folder
    of the tests' own helpers may be)."""
    found = []
    files = sorted(p for folder in ("bench", "fuzz", "tests", "conformance") for p in (ROOT / folder).rglob("*.py"))
    for path in files:
        depth = len(path.relative_to(ROOT).parts) - 1  # folders between the root and the file
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "sys.path" not in code and "PYTHONPATH" not in code:
                continue
            for expression in re.findall(r"str\(([^()]*(?:\([^()]*\)[^()]*)*)\)", code):
                ups = len(re.findall(r"\.parent(?!s)", expression))
                ups += sum(int(n) + 1 for n in re.findall(r"\.parents\[(\d+)\]", expression))
                root = expression.strip() == "ROOT" or ("__file__" in expression and ups == depth + 1)
                if root and '/ "' not in expression:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
