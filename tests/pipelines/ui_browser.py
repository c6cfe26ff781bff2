"""Headless Chromium for UI tests: Debian's browser (installed by scripts/ensure_chromium.sh), driven by
Playwright's Python client (which downloads no browser of its own here)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.resources import REPO_ROOT

# As root in a container: no sandbox; no GPU; and no background connections, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> tuple[str | None, str]:
    """The chromium executable (installing Debian's when missing), or None and why not."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        script = REPO_ROOT / "scripts" / "ensure_chromium.sh"
        subprocess.run(["bash", str(script)], capture_output=True, timeout=900, check=False)
        found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        return (
            None,
            "chromium is not installed and scripts/ensure_chromium.sh could not install it (see its output)",
        )
    return found, ""


@contextmanager
def chromium_page(executable: str, width: int = 2400, height: int = 1300) -> Iterator[object]:
    """A Playwright page in a fresh headless Chromium with its own empty profile."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
            )
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def copy_artifact(src: Path, name: str) -> Path:
    """Keep a copy where a person can look at it: outputs/test-artifacts/ (git-ignored)."""
    dest = REPO_ROOT / "outputs" / "test-artifacts" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest)
    return dest
