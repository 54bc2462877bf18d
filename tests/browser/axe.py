"""Accessibility checks of a page with axe-core (WCAG 2.1 A and AA rules).

axe-core comes from the npm registry (``tests/browser/package.json``, installed by
``scripts/test``); without it these checks skip. The pages' Content-Security-Policy allows no
inline script, so the browser context that runs a check must be made with
``bypass_csp=True`` (only for these checks: the other tests keep the policy).

Without axe-core (no npm) the checks skip, except in CI, where scripts/test installs it.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SERIOUS = {"serious", "critical"}


@cache
def axe_source() -> str:
    if not AXE.exists():
        why = f"axe-core is not installed ({AXE}): run scripts/test, or npm ci in tests/browser"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI installs it: a missing axe must not pass as a skip there
        pytest.skip(why)
    return AXE.read_text(encoding="utf-8")


async def violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical WCAG 2.1 A/AA violations on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=axe_source())
    found: list[dict[str, Any]] = await page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map((n) => n.target.join(" ")),
                summary: v.nodes.map((n) => n.failureSummary),
            }));
        }""",
        TAGS,
    )
    return [v for v in found if v["impact"] in SERIOUS]


async def check(page: Page, where: str) -> None:
    """Fail with each violation's id and targets when the page has a serious one."""
    found = await violations(page)
    assert not found, f"axe found problems on {where}:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}: {v['targets']} {v['summary']}" for v in found
    )
