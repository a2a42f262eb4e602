"""Every environment setting is defined once, in psops.settings, with its default and
meaning; the product, its tooling, tests and benchmarks read them only through it; the
README lists them all."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from psops.settings import SETTINGS, Setting, settings_table
from tests.conftest import REPO_ROOT

# Python code that reads settings: the product and what runs it or checks it.
PYTHON_CODE = ("dags/**/*.py", "plugins/**/*.py", "bin/*.py", "tests/**/*.py",
               "benchmarks/*.py")
SETTINGS_MODULE = REPO_ROOT / "plugins" / "psops" / "settings.py"
SETTING_NAME = re.compile(r"\bPSOPS_[A-Z0-9_]*[A-Z0-9]\b")
NOT_SCANNED = {".venv", ".git", ".airflow", ".warehouse", "build", "__pycache__",
               ".pytest_cache", ".ruff_cache", "node_modules"}
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".html", ".sql", ".cfg", ".txt",
                 ".sh", ""}


def test_every_setting_has_a_name_a_default_and_a_meaning():
    assert SETTINGS
    for key, setting in SETTINGS.items():
        assert isinstance(setting, Setting)
        assert key == setting.name and SETTING_NAME.fullmatch(setting.name), setting
        assert isinstance(setting.default, str), setting
        assert setting.meaning.strip(), f"{setting.name} has no meaning"


def test_a_setting_is_read_when_asked_for(monkeypatch):
    retries = SETTINGS["PSOPS_RETRIES"]
    monkeypatch.delenv(retries.name, raising=False)
    assert retries.integer() == int(retries.default)
    monkeypatch.setenv(retries.name, "5")
    assert retries.integer() == 5
    monkeypatch.setenv(retries.name, "  ")  # set but empty: not silently the default
    assert retries.text() == ""
    with pytest.raises(ValueError, match="PSOPS_RETRIES='' is not a number"):
        retries.integer()
    monkeypatch.setenv(retries.name, "many")
    with pytest.raises(ValueError, match="PSOPS_RETRIES='many' is not a number"):
        retries.integer()


def test_the_readme_lists_every_setting():
    """The README's "Settings" section is `python -m psops.settings`'s table."""
    readme = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"^## Settings\n(.*?)(?=^## )", readme, re.S | re.M)
    assert match, "README.md has no '## Settings' section"
    assert settings_table() in match.group(1), (
        "the README's settings table is out of date: paste the output of "
        "`PYTHONPATH=plugins .venv/bin/python -m psops.settings` into its Settings section")


def _repository_text_files() -> Iterator[Path]:
    for path in REPO_ROOT.rglob("*"):
        relative = path.relative_to(REPO_ROOT)
        if NOT_SCANNED & set(relative.parts) or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
            yield path


def test_every_psops_variable_mentioned_anywhere_is_a_setting():
    unknown = {}
    for path in _repository_text_files():
        for name in SETTING_NAME.findall(path.read_text(errors="replace")):
            if name not in SETTINGS:
                unknown.setdefault(name, str(path.relative_to(REPO_ROOT)))
    assert unknown == {}, "define these in plugins/psops/settings.py"


# -- code reads PSOPS_* settings only through psops.settings -------------------------

def _is_environ(node: ast.expr) -> bool:
    """`os.environ` or a bare `environ`."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id == "environ"


def _read_key(node: ast.AST) -> ast.expr | None:
    """The key expression when `node` reads the environment: os.environ.get(key),
    os.environ[key], os.getenv(key), key in os.environ, os.environ.setdefault/pop(key)."""
    if isinstance(node, ast.Call) and node.args:
        function = node.func
        if isinstance(function, ast.Attribute) and function.attr in {"get", "setdefault", "pop"} \
                and _is_environ(function.value):
            return node.args[0]
        if (isinstance(function, ast.Attribute) and function.attr == "getenv") or \
                (isinstance(function, ast.Name) and function.id == "getenv"):
            return node.args[0]
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return node.slice
    if isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
        return node.left
    return None


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "text"` assignments (a setting's name kept in a constant)."""
    constants = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant) \
                and isinstance(statement.value.value, str):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = statement.value.value
    return constants


def psops_environment_reads(source: str) -> list[tuple[int, str]]:
    """(line, setting name) of every direct environment read of a PSOPS_* name."""
    tree = ast.parse(source)
    constants = _string_constants(tree)
    reads = []
    for node in ast.walk(tree):
        key = _read_key(node)
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            name = key.value
        elif isinstance(key, ast.Name):
            name = constants.get(key.id, "")
        else:
            continue
        if name.startswith("PSOPS_"):
            reads.append((node.lineno, name))
    return reads


@pytest.mark.parametrize("source, expected", [
    ('import os\nx = os.environ.get("PSOPS_RETRIES", "1")', [(2, "PSOPS_RETRIES")]),
    ('import os\nx = os.environ["PSOPS_STACK_PORT"]', [(2, "PSOPS_STACK_PORT")]),
    ('import os\nx = os.getenv("PSOPS_METADATA_DB")', [(2, "PSOPS_METADATA_DB")]),
    ('import os\nENV = "PSOPS_FINANCE_USERS"\nx = os.environ.get(ENV)', [(3, "PSOPS_FINANCE_USERS")]),
    ('import os\nx = "PSOPS_CELERY_BROKER" in os.environ', [(2, "PSOPS_CELERY_BROKER")]),
    ('import os\nx = os.environ.get("AIRFLOW_HOME")', []),
])
def test_the_check_finds_direct_reads(source, expected):
    assert psops_environment_reads(source) == expected


def python_code() -> list[Path]:
    paths = {path for pattern in PYTHON_CODE for path in REPO_ROOT.glob(pattern)}
    return sorted(paths - {SETTINGS_MODULE})


def test_the_checked_code_includes_tooling_tests_and_benchmarks():
    folders = {path.relative_to(REPO_ROOT).parts[0] for path in python_code()}
    assert folders == {"dags", "plugins", "bin", "tests", "benchmarks"}


def test_code_reads_psops_settings_only_through_psops_settings():
    offenders = []
    for path in python_code():
        for line, name in psops_environment_reads(path.read_text()):
            offenders.append(f"{path.relative_to(REPO_ROOT)}:{line} reads {name}")
    assert offenders == [], "read these through psops.settings"


def test_an_empty_finance_users_setting_names_nobody_and_is_refused(monkeypatch):
    """Who may answer approvals is never silently the default."""
    from psops.finance_access import finance_users

    monkeypatch.setenv("PSOPS_FINANCE_USERS", "")
    with pytest.raises(ValueError, match="names no user"):
        finance_users()
