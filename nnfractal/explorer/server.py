"""The explorer's HTTP API (FastAPI) over one `Session`, and the page's static files.

Every request parameter is validated: bodies by strict pydantic models (unknown keys refused),
path and query values as bounded integers. Errors are JSON ``{"error": "<one line>"}`` with 422
(malformed request), 400 (a window float64 or the config refuses), 404, 409 (not ready), 415 (a
POST that is not JSON), 429 (queue full) or 503 (no report writer). Window and job ids are the
session's integers; no value of a request is ever used as a file path.

    GET  /                                   the page (index.html, app.js, style.css)
    GET  /api/session                        limits, colormap, windows, jobs
    GET  /api/windows                        all windows (metadata)
    POST /api/windows                        {"parent": id, "mnmx": [y0, y1, x0, x1], "resolution": n?}
    GET  /api/windows/{id}                   one window's metadata (axes, labels, dimension, ...)
    GET  /api/windows/{id}/map               pixels (colormap indices), boundary, progress,
                                             chaos flips (a window with twins, runner/chaos.py)
    GET  /api/windows/{id}/curve?row=&col=   one model's loss curve
    GET  /api/windows/{id}/map.png           the map as a PNG download
    POST /api/windows/{id}/report            queue writing report.html (503 without a report writer)
    GET  /api/windows/{id}/report            the written report
    GET  /api/jobs, /api/jobs/{id}           job status and progress
    POST /api/jobs/{id}/cancel               cancel a queued or running window job
"""
from __future__ import annotations

import base64
import contextlib
import math
from importlib import resources
from typing import Annotated, Any

import numpy as np
from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from nnfractal.estimators.boxcount import boundary
from nnfractal.render.maps import MAP_CMAP, cdf_restretch
from nnfractal.training.grid import axes, axis_labels
from nnfractal.training.measure import normalise
from nnfractal.window import Window

from .session import MAX_COORD, MAX_ID, MAX_QUEUED, RES_MAX, RES_MIN, ExploreError, Session

STATIC_FILES = {"index.html": "text/html; charset=utf-8",
                "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
MAX_BODY_BYTES = 4096        # every request body of the API is a few dozen bytes

Finite = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_COORD, le=MAX_COORD)]
WindowId = Annotated[int, Path(ge=0, le=MAX_ID, description="window id")]
JobId = Annotated[int, Path(ge=1, le=10**9, description="job id")]


class ZoomRequest(BaseModel):
    """A new window: the parent's config over `mnmx` (axis units: base-10 exponents on log axes)."""
    model_config = ConfigDict(extra="forbid")
    parent: Annotated[int, Field(strict=True, ge=0, le=MAX_ID)]
    mnmx: Annotated[list[Finite], Field(min_length=4, max_length=4)]
    resolution: Annotated[int, Field(strict=True, ge=RES_MIN, le=RES_MAX)] | None = None

    @field_validator("mnmx")
    @classmethod
    def _ordered(cls, v: list[float]) -> list[float]:
        window = Window.from_mnmx(v)
        if not (window.y0 < window.y1 and window.x0 < window.x1):
            raise ValueError(f"{v} is not allowed (allowed: y_min < y_max and x_min < x_max, "
                             "in the order y_min y_max x_min x_max)")
        return v


class EmptyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(errors) -> tuple[str, list[dict]]:
    parts, detail = [], []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
        detail.append({"loc": loc, "msg": msg, "type": e.get("type")})
    return "; ".join(parts), detail


def _colormap() -> list[list[int]]:
    """The maps' colours (render.maps.MAP_CMAP) as 256 RGB triples (index = floor((v + 1) / 2 * 256), v in [-1, 1])."""
    lut = MAP_CMAP(np.arange(256))[:, :3]
    return np.round(lut * 255).astype(int).tolist()


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def _num(v) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 before anything parses
    it (a Content-Length over the limit at once; a chunked body as soon as it passes the limit).
    A body within the limit is handed on unchanged."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(scope, receive, send)
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                return await self._refuse(scope, receive, send)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()
        return await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send) -> None:
        response = _error(413, f"body: more than {self.limit} bytes (allowed: at most "
                          f"{self.limit} bytes of JSON)")
        await response(scope, receive, send)


def create_app(session: Session, *, allowed_hosts: list[str] | None = LOCAL_HOSTS) -> FastAPI:
    """The API and page over `session`. `allowed_hosts`: Host headers accepted (None = any); the
    default admits only loopback names, which stops DNS-rebinding pages from reaching the API."""
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        session.close()

    app = FastAPI(title="nnfractal explorer", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    _add_guards(app, allowed_hosts)
    _add_page_routes(app)
    _add_window_routes(app, session)
    _add_job_routes(app, session)
    return app


def _add_guards(app: FastAPI, allowed_hosts: list[str] | None) -> None:
    """Host, Origin and Content-Type checks on every request, and errors as one JSON line."""
    @app.middleware("http")
    async def guard(request: Request, call_next):
        if allowed_hosts is not None:
            host = request.headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name not in allowed_hosts:
                return _error(400, f"host: {host!r} is not allowed (allowed: "
                              f"{', '.join(allowed_hosts)}; start with --host to serve other names)")
        if request.method == "POST":
            origin = request.headers.get("origin")
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin is not None and origin.lower() != own.lower():
                return _error(403, f"origin: {origin!r} is not allowed (allowed: this page's own "
                              f"origin {own}, or none)")
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return _error(415, f"content-type: {ctype or 'none'!r} is not allowed "
                              "(allowed: application/json)")
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.exception_handler(ExploreError)
    async def explore_error(_request, err: ExploreError):
        return _error(err.status, str(err))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, err: RequestValidationError):
        message, detail = _validation_message(err.errors())
        return _error(422, message, detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, err: StarletteHTTPException):
        return _error(err.status_code, str(err.detail))


def _add_page_routes(app: FastAPI) -> None:
    """The page itself: index.html, app.js, style.css (package data)."""
    def static(name: str) -> Response:
        text = resources.files("nnfractal.explorer").joinpath("static").joinpath(name).read_bytes()
        return Response(text, media_type=STATIC_FILES[name])

    @app.get("/", include_in_schema=False)
    def index():
        return static("index.html")

    @app.get("/app.js", include_in_schema=False)
    def app_js():
        return static("app.js")

    @app.get("/style.css", include_in_schema=False)
    def style_css():
        return static("style.css")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)


def window_info(session: Session, wid: int) -> dict[str, Any]:
    """What the page shows of a window: its place in the tree, its config, status and results."""
    win = session.window(wid)
    cfg = win.cfg
    x, y = axes(cfg)
    xlabel, ylabel = axis_labels(cfg)
    chain, w = [], win
    while w is not None:
        chain.append(w.id)
        w = session.windows.get(w.parent) if w.parent is not None else None
    job = session.jobs.get(win.job) if win.job is not None else None
    info = {
        "id": win.id, "name": f"w{win.id:03d}", "parent": win.parent, "status": win.status,
        "error": win.error, "job": job.to_dict(session.queue_position(job)) if job else None,
        "ancestors": chain[::-1], "mnmx": list(cfg.mnmx), "axis_scale": cfg.axis_scale,
        "resolution": cfg.resolution, "x": x.tolist(), "y": y.tolist(),
        "xlabel": xlabel.replace("log10 ", ""), "ylabel": ylabel.replace("log10 ", ""),
        "preset": cfg.preset, "model": cfg.model, "nonlinearity": cfg.nonlinearity,
        "optimizer": cfg.optimizer, "phase_space": cfg.phase_space, "measure": cfg.measure,
        "readout": cfg.readout, "metric": cfg.metric, "steps": cfg.steps or None,
        "tile_batch": cfg.tile_batch,
        "done_points": win.done_points if win.status != "done" else win.total_points,
        "total_points": win.total_points, "dimension": None, "fraction_converged": None,
        "wall_time_s": None, "report_url": None,
        "png_url": f"/api/windows/{win.id}/map.png" if win.status == "done" else None,
    }
    if win.status == "done":
        s, _ = session.score_map(win)
        info["dimension"] = win.dimension
        info["fraction_converged"] = float(np.mean(s < 0))
        info["wall_time_s"] = _num(win.wall_time_s)
        if win.report is not None and win.report.is_file():
            info["report_url"] = f"/api/windows/{win.id}/report"
    return info


def map_payload(session: Session, window_id: int) -> dict[str, Any]:
    """A window's map as the page draws it: colour indices and boundary bits (base64), so far."""
    win = session.window(window_id)
    s, done = session.score_map(win)
    rows, cols = s.shape
    flat = s.ravel()
    index = np.zeros(flat.size, dtype=np.uint8)
    if done:
        # The paper's restretch over the trained pixels, then Spectral's 256-colour lookup
        # exactly as matplotlib indexes it (so the page matches map.png).
        vals = np.nan_to_num(flat[:done], nan=0.0, posinf=1e300, neginf=-1e300)
        v = cdf_restretch(vals)
        index[:done] = np.clip(np.floor((v + 1.0) / 2.0 * 256), 0, 255).astype(np.uint8)
    edges = boundary(s) if rows > 1 and cols > 1 else np.zeros((0, 0), bool)
    converged = float(np.mean(flat[:done] < 0)) if done else None
    flips = session.chaos_layer(win)            # None: the window has no twins (--chaos)
    return {"id": win.id, "status": win.status, "error": win.error, "rows": rows, "cols": cols,
            "done": int(done), "pixels": _b64(index), "boundary": _b64(edges.ravel()),
            "boundary_pixels": int(edges.sum()), "fraction_converged": converged,
            "dimension": win.dimension if win.status == "done" else None,
            "chaos": _b64(flips["flipped"].ravel()) if flips else None,
            "chaos_fraction": flips["info"] if flips else None}


def curve_payload(session: Session, window_id: int, row: int, col: int) -> dict[str, Any]:
    """One pixel's loss curve, its hyperparameters and its score."""
    win = session.window(window_id)
    curve = session.curve(win, row, col)
    x, y = axes(win.cfg)
    finite = np.isfinite(curve)
    first_bad = int(np.argmin(finite)) if not finite.all() else None
    s, done = session.score_map(win)
    score = s[row, col] if row * win.cfg.resolution + col < done else None
    norm_tail = normalise(curve)[-20:].mean()
    return {"window": win.id, "row": row, "col": col, "x": float(x[col]), "y": float(y[row]),
            "loss": [float(v) if np.isfinite(v) else None for v in curve],
            "first_nonfinite_step": first_bad, "score": _num(score),
            "converged": bool(score < 0) if score is not None else None,
            "normalised_tail_mean": _num(norm_tail),
            "steps_per_epoch": session.steps_per_epoch(win)}


def _add_window_routes(app: FastAPI, session: Session) -> None:
    """/api/session and /api/windows/...: the tree, new windows, maps, curves, pictures, reports."""
    colormap = _colormap()

    def window_ids() -> list[int]:
        with session._lock:
            return sorted(session.windows)

    @app.get("/api/session")
    def get_session():
        ids = window_ids()
        return {"folder": str(session.folder), "root_is_run": session.root_is_run,
                "limits": {"resolution_min": RES_MIN, "resolution_max": RES_MAX,
                           "max_queued": MAX_QUEUED, "max_coord": MAX_COORD},
                "default_resolution": session.window_resolution(
                    session.window(ids[0]).cfg.resolution) if ids else session.default_resolution,
                "colormap": colormap, "windows": [window_info(session, i) for i in ids],
                "jobs": session.jobs_list()}

    @app.get("/api/windows")
    def list_windows():
        return [window_info(session, i) for i in window_ids()]

    @app.post("/api/windows", status_code=202)
    def create_window(req: ZoomRequest):
        win, job = session.submit_window(req.parent, req.mnmx, req.resolution)
        return {"window": window_info(session, win.id),
                "job": job.to_dict(session.queue_position(job))}

    @app.get("/api/windows/{window_id}")
    def get_window(window_id: WindowId):
        return window_info(session, window_id)

    @app.get("/api/windows/{window_id}/map")
    def get_map(window_id: WindowId):
        return map_payload(session, window_id)

    @app.get("/api/windows/{window_id}/curve")
    def get_curve(window_id: WindowId, row: Annotated[int, Query(ge=0, le=RES_MAX - 1)],
                  col: Annotated[int, Query(ge=0, le=RES_MAX - 1)]):
        return curve_payload(session, window_id, row, col)

    @app.get("/api/windows/{window_id}/map.png")
    def get_png(window_id: WindowId):
        win = session.window(window_id)
        return Response(session.png(win), media_type="image/png", headers={
            "Content-Disposition": f'attachment; filename="nnfractal-w{win.id:03d}-map.png"'})

    @app.post("/api/windows/{window_id}/report", status_code=202)
    def create_report(window_id: WindowId, _body: Annotated[EmptyRequest | None, Body()] = None):
        job = session.submit_report(window_id)
        return {"job": job.to_dict(session.queue_position(job))}

    @app.get("/api/windows/{window_id}/report")
    def get_report(window_id: WindowId):
        win = session.window(window_id)
        path = win.report
        inside = path is not None and path.resolve().is_relative_to(win.folder.resolve())
        if not inside or not path.is_file():
            raise ExploreError(404, f"report: window {window_id} has no report yet (write it first)")
        return FileResponse(path, media_type="text/html; charset=utf-8")


def _add_job_routes(app: FastAPI, session: Session) -> None:
    """/api/jobs: the queue, one job, cancelling."""
    @app.get("/api/jobs")
    def list_jobs():
        return session.jobs_list()

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: JobId):
        job = session.job(job_id)
        return job.to_dict(session.queue_position(job))

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(job_id: JobId, _body: Annotated[EmptyRequest | None, Body()] = None):
        job = session.cancel(job_id)
        return job.to_dict(session.queue_position(job))
