"""Local images: inspect, pull (counting bytes), remove and re-tag, through the docker SDK.

Key names: `RemovedImage`, `remove_image`, `restore_tags` (async), and the blocking `labels`,
`pull`, `remove`, `retag` used by the docker runtime from its threads. Errors are translated
with `fcbench.images.engine.translated` by the async functions; blocking callers wrap them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RuntimeBackendError
from .engine import connect, translated

if TYPE_CHECKING:
    import docker

__all__ = ["RemovedImage", "labels", "pull", "remove", "remove_image", "restore_tags", "retag"]


@dataclass(frozen=True)
class RemovedImage:
    """What `remove_image` did: the image id and every tag it removed (empty when absent)."""

    ref: str
    image_id: str | None = None
    tags: tuple[str, ...] = ()


async def remove_image(ref: str, *, all_tags: bool = True,
                       client: docker.DockerClient | None = None) -> RemovedImage:
    """Remove image `ref` from the local daemon so that the next cold start pulls it.

    With `all_tags` (default) the image is removed by id, with every tag that points at it, so
    its own layers are really deleted (layers shared with another image, e.g. the base, stay).
    Without, only the `ref` tag goes (layers stay while another tag holds them).
    An absent image is not an error.

    Raises:
        DockerUnavailable: the daemon does not answer.
        RuntimeBackendError: the daemon refused (e.g. a running container uses the image).
    """
    client = client or await asyncio.to_thread(connect)

    def run() -> RemovedImage:
        with translated(f"remove image {ref}"):
            return remove(client, ref, all_tags)

    return await asyncio.to_thread(run)


async def restore_tags(removed: RemovedImage, *, client: docker.DockerClient | None = None) -> None:
    """Put back the tags `remove_image` removed, on the same image id (after a pull brought the
    image back). Tags whose image is not local are skipped."""
    client = client or await asyncio.to_thread(connect)

    def run() -> None:
        with translated(f"tag image {removed.ref}"):
            retag(client, removed)

    await asyncio.to_thread(run)


# ---- blocking (run them in a thread) ----------------------------------------------------------
def retag(client: docker.DockerClient, removed: RemovedImage) -> None:
    from docker import errors
    from docker.utils import parse_repository_tag

    if removed.image_id is None:
        return
    try:
        image = client.images.get(removed.image_id)
    except errors.ImageNotFound:
        return
    for tag in removed.tags:
        repo, version = parse_repository_tag(tag)
        image.tag(repo, version or "latest")


def remove(client: docker.DockerClient, ref: str, all_tags: bool) -> RemovedImage:
    from docker import errors

    try:
        image = client.images.get(ref)
    except errors.ImageNotFound:
        return RemovedImage(ref)
    if all_tags:
        # stopped containers of the image would block removal; ours are gone, others are forced
        client.images.remove(image.id, force=True)
        return RemovedImage(ref, image.id, tuple(image.tags))
    client.images.remove(ref)
    return RemovedImage(ref, image.id, (ref,))


def labels(client: docker.DockerClient, image: str) -> dict[str, str] | None:
    """The image's labels (plus ``__size__``) or None when it is not local."""
    from docker import errors

    try:
        attrs = client.api.inspect_image(image)
    except errors.ImageNotFound:
        return None
    labels = dict((attrs.get("Config") or {}).get("Labels") or {})
    labels["__size__"] = str(attrs.get("Size", 0))
    return labels


def pull(client: docker.DockerClient, image: str) -> tuple[int, int]:
    """Pull `image`; returns (bytes downloaded, layers downloaded) from the progress stream."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(image)
    totals: dict[str, int] = {}
    for event in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
        if "error" in event:
            raise RuntimeBackendError(
                f"pulling {image} failed: {event['error']}; build it with `fcbench images build` "
                "or push it to the registry the reference names (a local one: `bash "
                "scripts/ci-services.sh` starts 127.0.0.1:5000)")
        detail = event.get("progressDetail") or {}
        if event.get("status") == "Downloading" and detail.get("total"):
            totals[event.get("id", "")] = max(totals.get(event.get("id", ""), 0),
                                              int(detail["total"]))
    return sum(totals.values()), len(totals)
