"""The package layout promises: import direction, one registry, console scripts."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_inference_and_app_do_not_import_torch():
    code = ("import sys, mrnet.infer, mrnet.infer.cli, mrnet.infer.predictor, mrnet.infer.exam, mrnet.app; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_infer_never_imports_train_or_app():
    offenders = []
    for path in (REPO / "infer").rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(from|import)\s+(mrnet\.(train|app)|torch)\b", text, re.M):
            offenders.append(path.name)
    assert offenders == []


def test_app_imports_only_infer():
    offenders = []
    for path in (REPO / "app").rglob("*.py"):
        if re.search(r"^\s*(from|import)\s+(mrnet\.train|torch)\b", path.read_text(), re.M):
            offenders.append(path.name)
    assert offenders == []


def test_planes_and_tasks_are_spelled_out_only_in_the_registry():
    pattern = re.compile(r"""["']axial["']\s*,\s*["']coronal["']|["']abnormal["']\s*,\s*["']acl["']\s*,""")
    offenders = [str(p.relative_to(REPO)) for folder in ("infer", "train", "app")
                 for p in (REPO / folder).rglob("*.py")
                 if p.name != "registry.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_packages_install_under_mrnet_only(tmp_path):
    # Run outside the checkout so that only what is installed can be found.
    code = ("import importlib.util as u; "
            "print([n for n in ('train', 'infer', 'app') if u.find_spec(n)], "
            "all(u.find_spec(n) for n in ('mrnet.train', 'mrnet.infer', 'mrnet.app')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=tmp_path)
    assert result.stdout.strip() == "[] True"


def test_console_scripts_answer_help():
    for script in ("mrnet-train", "mrnet-predict"):
        exe = REPO / ".venv" / "bin" / script
        command = [str(exe)] if exe.exists() else [script]
        result = subprocess.run(command + ["--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout
