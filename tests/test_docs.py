"""The docs keep working when copied: ids in examples are real ULIDs the API accepts, the README's
cancel example reaches the task lookup (404 for an unknown task, not 422 for a malformed id),
and the docs point only at files that are in the project."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from ulid import ULID

from jobbers.manager.schemas import ULID_PATTERN
from tests.manager_support import api, manager_settings, registered  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: 26 characters of base32 bounded by non-word characters: what a reader takes for a task id.
ULID_LIKE = re.compile(r"(?<![A-Za-z0-9])[0-9A-Z]{26}(?![A-Za-z0-9])")


def ids_in_docs() -> list[tuple[str, str]]:
    return [(path.name, found) for path in DOCS for found in ULID_LIKE.findall(path.read_text())]


def test_the_docs_show_task_ids() -> None:
    assert ids_in_docs(), "no example ids found: the pattern or the docs changed"


@pytest.mark.parametrize(("doc", "task_id"), ids_in_docs())
def test_every_id_in_the_docs_is_a_valid_ulid(doc: str, task_id: str) -> None:
    assert str(ULID.from_str(task_id)) == task_id, doc
    assert re.fullmatch(ULID_PATTERN, task_id), f"{doc}: the API would answer 422 for {task_id}"


async def test_the_readme_cancel_example_reaches_the_task_lookup(api: httpx.AsyncClient) -> None:  # noqa: F811
    readme = (ROOT / "README.md").read_text()
    path = re.search(r"curl -X POST http://localhost:8000(/task/\S+/cancel)", readme)
    assert path is not None

    r = await api.post(path.group(1))

    assert r.status_code == 404, r.text  # a well-formed id of a task that does not exist here


def test_the_docs_point_only_at_files_in_the_project() -> None:
    outside = "DESIGN" + ".md"  # the architecture notes are not shipped with the project
    checked = [*DOCS, *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py"),
               ROOT / "docker-compose.yml", ROOT / "Dockerfile"]  # fmt: skip
    mentions = [str(p.relative_to(ROOT)) for p in checked if outside in p.read_text()]
    assert mentions == []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
