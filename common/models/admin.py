"""Wire models of the admin calls: cleaning up dead sessions."""

from __future__ import annotations

from pydantic import Field

from sshkeep.common.models.base import Reply, Request

MAX_AGE_LIMIT = 10 * 365 * 86400.0


class CleanupRequest(Request):
    max_age_seconds: float = Field(
        default=0.0,
        ge=0,
        le=MAX_AGE_LIMIT,
        description="Close only sessions disconnected (and drop only jobs finished) at least this many "
        "seconds ago (0: every dead one)",
    )


class CleanupResult(Reply):
    removed: list[str] = Field(description="Ids of the disconnected sessions that were closed")
    kept: list[str] = Field(
        default_factory=list, description="Disconnected sessions younger than max_age_seconds, kept"
    )
    max_age_seconds: float
    removed_jobs: list[str] = Field(
        default_factory=list,
        description="Finished jobs older than max_age_seconds whose records were removed",
    )
