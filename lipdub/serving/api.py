"""The HTTP job API behind ``lipdub serve``: submit a dub, watch it, download it, delete it.

A FastAPI app (its OpenAPI schema is served at ``/openapi.json``) over the `JobStore` and the
`WorkerPool`; it adds no dubbing logic of its own. What it does own is the boundary with
strangers on a network:

- Nothing is trusted by name. Uploads are saved under server-chosen names in a folder named by
  a server-made id, then opened (`inspect_face` / `inspect_audio`) before anything is queued; the
  client's file name is never used, and options are validated by `JobOptions`.
- Nothing is read that will be refused anyway. A guard in front of the app answers 401 to a
  body sent without the token and 413 to a body over the limit before reading a byte of it (by
  its ``Content-Length``), or as soon as a streamed body passes the limit.
- Every error is ``{"detail": "one line"}``: the same messages the CLI prints, with the server's
  folders taken out, and never a stack trace (those go to the server's log).
- A result is only offered once its job is ``done``; the pipeline renames the finished file
  into place, so a half-written video is never served.

Swagger's ``/docs`` page is switched off: it loads its scripts from a CDN, and this server makes
no request to the internet, nor asks a browser to.
"""

from __future__ import annotations

import hmac
import logging
import shutil
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional

from fastapi import Depends, FastAPI, File, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from lipdub import __version__
from lipdub.errors import LipdubError
from lipdub.serving.inputs import inspect_audio, inspect_face
from lipdub.serving.live_socket import add_live_routes
from lipdub.serving.options import JobOptions
from lipdub.serving.store import Job, JobState, JobStore, is_job_id, new_job_id
from lipdub.serving.worker import WorkerPool, public_message

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Room in a request body for the options field and the multipart framing, beyond the two files.
_FORM_OVERHEAD = MIB


class ServerSettings(BaseSettings):
    """How a server is set up; each field can also come from ``LIPDUB_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="LIPDUB_", extra="ignore")

    data_dir: Path = Field(Path("lipdub-data"), description="Job database and one folder per job.")
    max_upload_bytes: int = Field(500 * MIB, ge=1, description="Largest face or audio upload, each.")
    max_seconds: float = Field(600.0, gt=0, description="Longest face video or speech track accepted.")
    workers: int = Field(1, ge=0, le=64, description="Jobs run at once (0: accept jobs but run none).")
    token: Optional[SecretStr] = Field(None, description="Bearer token every job request must carry (LIPDUB_TOKEN).")
    profiles_dir: Optional[Path] = Field(None, description="Folder of personalisation profiles, chosen by name.")
    max_attempts: int = Field(2, ge=1, description="Times a job may be started before a restart fails it.")
    live_sessions: int = Field(1, ge=0, le=16, description="Live avatars (`/v1/live`) drawn at once (0: none).")

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def database(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    def token_ok(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries this server's token (always true without one)."""
        if self.token is None or not self.token.get_secret_value():
            return True
        scheme, _, value = (authorization or "").partition(" ")
        expected = self.token.get_secret_value().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected)


class ErrorBody(BaseModel):
    """Every error response: one line, as the CLI would print it."""

    detail: str


class JobView(BaseModel):
    """A job as clients see it."""

    id: str = Field(description="32 hex digits.")
    state: JobState
    stage: Optional[str] = Field(None, description="queued, starting, preparing (tracking faces, planning), rendering, done...")
    progress: float = Field(ge=0.0, le=1.0, description="Fraction of output frames written.")
    frames_done: int = Field(ge=0)
    frames_total: Optional[int] = Field(None, description="Output frames, once known.")
    fps: Optional[float] = Field(None, description="Frames per second while rendering; overall, once done.")
    error: Optional[str] = Field(None, description="Why the job failed, in one line.")
    warning: Optional[str] = Field(None, description="What to check in a done job's result, in one line (e.g. lips the tracker cannot read); usually none.")
    attempts: int = Field(ge=0, description="Times the job has been started (a restart may start it again).")
    options: JobOptions
    created: datetime
    updated: datetime
    result_url: Optional[str] = Field(None, description="Where to download the video, once done.")

    @classmethod
    def of(cls, job: Job) -> "JobView":
        return cls(
            id=job.id, state=job.state, stage=job.stage, progress=job.progress, frames_done=job.frames_done,
            frames_total=job.frames_total, fps=job.fps, error=job.error, warning=job.warning, attempts=job.attempts,
            options=JobOptions.model_validate_json(job.options),
            created=datetime.fromtimestamp(job.created, timezone.utc),
            updated=datetime.fromtimestamp(job.updated, timezone.utc),
            result_url=f"/v1/jobs/{job.id}/result" if job.state is JobState.done else None,
        )


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    workers: int
    queued: int
    running: int


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorBody} for code in codes}


def one_line(text: object) -> str:
    return " ".join(str(text).split()) or "error"


def _validation_line(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = [str(part) for part in error.get("loc", ()) if part not in ("body", "path", "query", "header")]
        parts.append(f"{'.'.join(where) or 'request'}: {error.get('msg', 'invalid')}")
    return one_line("; ".join(parts) or "invalid request")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """A job API app over ``settings.data_dir``; its workers start and stop with the app's lifespan."""
    settings = settings or ServerSettings()
    settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.database)
    pool = WorkerPool(store, settings.jobs_dir, settings.workers, settings.profiles_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import lipdub.media.decode  # noqa: F401  (otherwise the first upload's check pays for importing the decoders)

        _recover(store, settings)
        pool.start()
        logger.info("serving jobs from %s with %d workers", settings.data_dir, settings.workers)
        try:
            yield
        finally:
            pool.close()
            logger.info("job API stopped; unfinished jobs stay in %s for the next start", settings.database)

    app = FastAPI(
        title="lipdub job API", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Submit a face (video or photo) and a speech track, get the lip-synced MP4 back.",
    )
    app.state.settings, app.state.store, app.state.pool = settings, store, pool
    app.add_middleware(_UploadGuard, max_body=2 * settings.max_upload_bytes + _FORM_OVERHEAD, token_ok=settings.token_ok)
    _add_error_handlers(app)
    bearer = HTTPBearer(auto_error=False, description="Required when the server has LIPDUB_TOKEN set.")

    def authorised(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        header = None if credentials is None else f"{credentials.scheme} {credentials.credentials}"
        if not settings.token_ok(header):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    add_live_routes(app, settings, settings.live_sessions)

    def job_or_404(job_id: str) -> Job:
        job = store.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    @app.get("/v1/health", response_model=Health, tags=["server"])
    def health() -> Health:
        """Whether the server is up, and how busy."""
        return Health(version=__version__, workers=settings.workers, queued=store.count(JobState.queued),
                      running=store.count(JobState.running))

    @app.post("/v1/jobs", status_code=202, response_model=JobView, tags=["jobs"],
              responses=_errors(400, 401, 413, 422), dependencies=[Depends(authorised)])
    def submit(
        response: Response,
        face: UploadFile = File(..., description="Video or photo of the person (sniffed by content)."),
        audio: UploadFile = File(..., description="Speech, or a video whose audio track to use."),
        options: str = Form("", description="`JobOptions` as JSON; empty for the defaults."),
    ) -> JobView:
        """Queue a dub; 202 with the job, whose ``Location`` to poll."""
        job_options = JobOptions.parse(options)
        job_options.to_sync_options(settings.profiles_dir)  # an unknown profile fails now, not in the queue
        job_id = new_job_id()
        folder = settings.jobs_dir / job_id
        folder.mkdir()
        try:
            for role, upload in (("face", face), ("audio", audio)):
                _save_upload(upload, folder / role, role, settings.max_upload_bytes)
            try:
                inspect_face(folder / "face", settings.max_seconds)
                inspect_audio(folder / "audio", settings.max_seconds)
            except LipdubError as error:
                raise LipdubError(public_message(str(error), folder)) from None
            job = store.create(job_id, job_options.model_dump_json(), "face", "audio")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        pool.wake()
        logger.info("job %s queued", job_id)
        response.headers["Location"] = f"/v1/jobs/{job_id}"
        return JobView.of(job)

    @app.get("/v1/jobs/{job_id}", response_model=JobView, tags=["jobs"], responses=_errors(401, 404),
             dependencies=[Depends(authorised)])
    def status(job_id: str) -> JobView:
        """State, progress (stage, frames, fps) and error of one job."""
        return JobView.of(job_or_404(job_id))

    @app.get("/v1/jobs/{job_id}/result", tags=["jobs"], response_class=FileResponse,
             responses={200: {"content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
                              "description": "The dubbed video (H.264 + AAC MP4)."},
                        **_errors(401, 404, 409)},
             dependencies=[Depends(authorised)])
    def result(job_id: str) -> FileResponse:
        """The finished MP4; 409 while the job is not done."""
        job = job_or_404(job_id)
        if job.state is not JobState.done or job.result is None:
            reason = f": {job.error}" if job.error else ""
            raise HTTPException(409, f"job is {job.state.value}{reason}")
        path = settings.jobs_dir / job.id / job.result
        if not path.is_file():
            raise HTTPException(409, "job's result is gone")
        return FileResponse(path, media_type="video/mp4", filename=f"lipdub-{job.id}.mp4")

    @app.delete("/v1/jobs/{job_id}", response_model=JobView, tags=["jobs"], responses=_errors(401, 404),
                dependencies=[Depends(authorised)])
    def delete(job_id: str) -> JobView:
        """Cancel the job if it is queued or running, then remove it and its files; returns it as it ended."""
        job = job_or_404(job_id)
        if store.cancel(job.id):
            pool.cancel(job.id)
        ended = store.get(job.id) or job
        shutil.rmtree(settings.jobs_dir / job.id, ignore_errors=True)
        store.delete(job.id)
        logger.info("job %s deleted (%s)", job.id, ended.state.value)
        view = JobView.of(ended)
        return view.model_copy(update={"result_url": None})

    return app


def _save_upload(upload: UploadFile, target: Path, role: str, limit: int) -> None:
    """Copy an upload to ``target`` (a new file), refusing it as soon as it passes ``limit`` bytes."""
    size = 0
    with open(target, "xb") as out:
        while chunk := upload.file.read(MIB):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{role}: upload is over this server's limit of {_mb(limit)}")
            out.write(chunk)
    if size == 0:
        raise LipdubError(f"{role}: the upload is empty")


def _mb(size: int) -> str:
    return f"{size / MIB:.3g} MB"


def _recover(store: JobStore, settings: ServerSettings) -> None:
    """Start-up: re-queue or fail what a dead server left running, drop folders no job owns."""
    requeued, failed = store.recover(settings.max_attempts)
    if requeued:
        logger.warning("re-queued %d job(s) a previous server left running: %s", len(requeued), ", ".join(requeued))
    if failed:
        logger.warning("failed %d job(s) that were running at %d restarts: %s", len(failed), settings.max_attempts,
                       ", ".join(failed))
    known = store.ids()
    for folder in settings.jobs_dir.iterdir():
        if folder.is_dir() and folder.name not in known:  # an upload cut off before its job was stored
            shutil.rmtree(folder, ignore_errors=True)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_line(exc)}, status_code=422)

    @app.exception_handler(LipdubError)
    async def refused_input(request: Request, exc: LipdubError) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)


class _UploadGuard:
    """Refuses a request body before the app parses it: no token (401), or over ``max_body`` (413).

    A plain ASGI middleware, because FastAPI reads and spools a whole multipart body before any
    dependency (the token check) or endpoint runs. A declared ``Content-Length`` over the limit is
    answered at once, without reading the body; a streamed body is cut off as soon as it passes.
    """

    def __init__(self, app, max_body: int, token_ok: Callable[[str | None], bool]) -> None:
        self.app = app
        self.max_body = max_body
        self.token_ok = token_ok

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        has_body = (length is not None and length.strip() != "0") or "transfer-encoding" in headers
        if has_body and not self.token_ok(headers.get("authorization")):
            await _reply(scope, receive, send, 401, "missing or wrong bearer token", {"www-authenticate": "Bearer"})
            return
        if length is not None and length.strip().isdigit() and int(length) > self.max_body:
            await _reply(scope, receive, send, 413, f"request of {_mb(int(length))} is over this server's limit of {_mb(self.max_body)}")
            return
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, f"request is over this server's limit of {_mb(self.max_body)}")
            return message

        await self.app(scope, limited, send)


async def _reply(scope, receive, send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)
