"""Install a packaged pipeline into a throw-away virtual environment, load it by name, tag a text.

Usage (from project/):
    python scripts/smoke_test.py WHEEL PACKAGE_NAME TEXT OUTPUT_JSON [--mode linked|isolated] [--repo ..]

``--mode linked`` (default): the new venv sees this environment's packages
through a .pth file (spaCy, torch, spacy-ladtl are not reinstalled); the wheel
is installed into the new venv and its requirements (spacy-ladtl, spaCy) must be
satisfied there; seconds.
``--mode isolated``: a bare venv where pip installs spacy-ladtl from ``--repo``
and every dependency from the package index (minutes; what a user's fresh
machine does). Either way the pipeline is loaded by its package name from a
temporary working directory, so nothing is imported from the repository by path.
"""
import argparse
import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import List, Optional

TAG_SCRIPT = Path(__file__).with_name("tag_text.py")
# run inside the new venv: every requirement of the installed pipeline is met
CHECK_REQUIREMENTS = """
import sys
from importlib import metadata
from packaging.requirements import Requirement
for text in metadata.requires(sys.argv[1]) or []:
    req = Requirement(text)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        sys.exit(f"requirement {text} of {sys.argv[1]} is not installed")
    if version not in req.specifier:
        sys.exit(f"requirement {text} of {sys.argv[1]} not met: {req.name} {version}")
    print(f"requirement {text}: {req.name} {version} ok")
"""


def run(command: List[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    print(result.stdout, end="", flush=True)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        sys.exit(f"✘ smoke test failed: {' '.join(command)} exited with {result.returncode}")
    return result.stdout


def link_current_environment(env_dir: Path) -> None:
    """Make this environment's site-packages visible inside the new venv."""
    python = env_dir / "bin" / "python"
    new_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    lines = [f"import site; site.addsitedir({path!r})" for path in site.getsitepackages()]
    Path(new_site, "_ladtl_smoke_link.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")


def smoke(wheel: Path, package: str, text: str, output: Path, isolated_repo: Optional[Path]) -> None:
    if not wheel.is_file():
        sys.exit(f"✘ {wheel} not found: run the package step first.")
    start = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="ladtl-smoke-"))
    try:
        env_dir = workdir / "venv"
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        python = str(env_dir / "bin" / "python")
        if isolated_repo is None:
            link_current_environment(env_dir)
            # --force-reinstall --no-deps: install into the new venv even when this environment has the
            # pipeline already; then its requirements (spacy-ladtl, spaCy) must be satisfied there.
            run([python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel.resolve())], workdir)
            run([python, "-c", CHECK_REQUIREMENTS, package], workdir)
        else:
            run([python, "-m", "pip", "install", "--quiet", "torch==2.13.0"], workdir)
            run([python, "-m", "pip", "install", "--quiet", str(isolated_repo.resolve()), str(wheel.resolve())], workdir)
        location = run([python, "-c", f"import {package}; print({package}.__file__)"], workdir).strip()
        if not location.startswith(str(env_dir)):
            sys.exit(f"✘ {package} was imported from {location}, not from the throw-away venv")
        tagged = run([python, str(TAG_SCRIPT.resolve()), package, text], workdir)
        result = {
            "wheel": str(wheel),
            "package": package,
            "mode": "isolated" if isolated_repo else "linked",
            "installed_at": location,
            "text": text,
            "output": tagged.splitlines(),
            "seconds": round(time.time() - start, 1),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"✔ smoke test passed in {result['seconds']} s ({result['mode']} install): {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path)
    parser.add_argument("package")
    parser.add_argument("text")
    parser.add_argument("output", type=Path)
    parser.add_argument("--mode", choices=("linked", "isolated"), default="linked")
    parser.add_argument("--repo", type=Path, default=Path(".."), help="spacy-ladtl source tree (isolated mode)")
    args = parser.parse_args()
    smoke(args.wheel, args.package, args.text, args.output, args.repo if args.mode == "isolated" else None)
