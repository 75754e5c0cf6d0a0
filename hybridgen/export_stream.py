"""A batch's export as a streamed JSONL download, shared by GET /api/batches/{id}/export and the batch
page's export button, so the two send the same rows and the same counts."""

from __future__ import annotations

import json
from typing import Iterator

from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import StreamingResponse

from service.export import ExportOptions, ExportSummary, export_records, export_summary


def summary_headers(summary: ExportSummary) -> dict[str, str]:
    """What the export leaves out, as headers (they go before the streamed rows): X-Hybridgen-Exported,
    X-Hybridgen-Left-Out (a count), X-Hybridgen-Left-Out-By (reason=count,...), X-Hybridgen-Pending."""
    return {"X-Hybridgen-Exported": str(summary.exported), "X-Hybridgen-Left-Out": str(summary.left_out_total),
            "X-Hybridgen-Left-Out-By": ",".join(f"{k}={v}" for k, v in sorted(summary.left_out.items())),
            "X-Hybridgen-Pending": str(summary.pending)}


def jsonl_lines(sessions: sessionmaker[Session], batch_id: int, options: ExportOptions) -> Iterator[bytes]:
    with sessions() as session:
        for record in export_records(session, batch_id, options):
            yield (json.dumps(record, ensure_ascii=False) + "\n").encode()


def export_download(sessions: sessionmaker[Session], batch_id: int, options: ExportOptions) -> StreamingResponse:
    """The counts are taken first (for the headers), then the rows streamed in a session of their own."""
    with sessions() as session:
        summary = export_summary(session, batch_id, options)
    return StreamingResponse(jsonl_lines(sessions, batch_id, options), media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.jsonl"',
                                      **summary_headers(summary)})
