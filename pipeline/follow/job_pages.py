"""The server's job list, page by page, for status refresh and reconcile."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator

from pipeline.api.client import SlngClient
from pipeline.api.models import BatchJob
from pipeline.transport.retry import RetryPolicy, retry_transient

LIST_PAGE_SIZE = 100


async def job_pages(
    client: SlngClient, policy: RetryPolicy, **filters: str
) -> AsyncGenerator[list[BatchJob], None]:
    """The job list, page by page, oldest first: jobs submitted meanwhile land on later pages
    instead of shifting earlier ones.

    The pages end at `meta.pages`, or at the first empty page. A server that sends no `meta` and
    answers every page with the same items (it ignores `page`) is stopped at the first repeat.
    """
    page, pages = 1, 1
    previous: set[str] = set()
    while page <= pages:
        listing = await retry_transient(
            policy,
            functools.partial(
                client.list_jobs, page, LIST_PAGE_SIZE, sort_by="submitted_at", sort_order="asc", **filters
            ),
        )
        ids = {job.job_id for job in listing.items}
        if not ids or (listing.meta is None and ids == previous):
            return
        yield listing.items
        pages = listing.meta.pages if listing.meta is not None else page + 1
        previous = ids
        page += 1
