"""Reading what a flow run published, from the Prefect API the tests run against."""

from __future__ import annotations

import asyncio


def latest_artifact(key: str) -> str | None:
    """The data of the newest artifact with ``key``, or None."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                                sort=ArtifactSort.CREATED_DESC, limit=1)
            return found[0].data if found else None

    return asyncio.run(read())
