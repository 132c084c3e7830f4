"""The composition root: builds the store, actions context, runner and link, and the web app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, FastAPI

from tether import config
from tether.actions import passwords, sessions, users
from tether.actions.context import Context
from tether.actions.events import Events
from tether.actions.membership import Membership
from tether.actions.wakeups import Wakeups, origin_token
from tether.config import Settings
from tether.link.linker import Linker
from tether.runner import runner as runner_module
from tether.runner import sandbox
from tether.runner.runner import Runner
from tether.store.database import Database
from tether.web import contract, pages
from tether.web import errors as web_errors
from tether.web.headers import SecurityHeaders
from tether.web.limits import BodyLimit
from tether.web.link_lane import LinkLane
from tether.web.routes import connectors, executions, files, flows, processes, sync_configs
from tether.web.routes import messages as message_routes
from tether.web.routes import settings as setting_routes
from tether.web.routes import users as user_routes

log = logging.getLogger(__name__)
API_PREFIX = "/api/latest"


def create_app(settings: Settings) -> FastAPI:
    """A workspace's web app; starting it (lifespan) starts its runner."""
    if settings.no_runner:
        config.require_shared_store(settings, "--no-runner")
    if settings.is_sandbox_on and not settings.no_runner:
        sandbox.check_kernel()
    # checked before anything is written
    confinement = None if settings.no_runner else sandbox.policy(settings)
    config.make_data_dir_private(settings)
    database = Database(settings.resolved_database_url)
    database.migrate()
    ctx = Context(
        db=database,
        events=Events(),
        workspace_name=settings.name,
        secret=config.workspace_secret(settings),
        origin=origin_token() if settings.is_shared_store else None,
    )
    wakeups = Wakeups(ctx) if settings.is_shared_store else None
    generated = users.ensure_admin(ctx, settings.admin_password)
    if generated:
        print(f"created the organization admin 'admin' with password: {generated}", flush=True)
    users.ensure_link_account(ctx)
    membership = Membership(
        ctx,
        kind="serve",
        name=settings.process_name,
        lease_s=settings.lease_s,
        is_alone=not settings.is_shared_store,
        alone_message=runner_module.RESTART_MESSAGE,
    )
    runner = (
        None
        if settings.no_runner
        else Runner(
            ctx,
            membership=membership,
            max_running=settings.max_running,
            cancel_grace_s=settings.cancel_grace_s,
            sandbox=confinement,
            max_log_mb=settings.execution_log_mb,
        )
    )

    linker = Linker(
        ctx,
        long_poll_s=settings.long_poll_s,
        max_skew_s=settings.max_clock_skew_s,
        env_proxies=config.proxies_from_environment(),
        # Several servers share the store: each link is dialed by one of them at a time.
        membership=membership if settings.is_shared_store else None,
    )
    # Logins wait for a password check of a quarter second: on threads of their own, so that
    # a flood of them never takes the worker threads every other request needs.
    login_threads = ThreadPoolExecutor(passwords.MAX_HASHING, thread_name_prefix="tether-login")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.events.bind(asyncio.get_running_loop())
        if wakeups is not None:
            await wakeups.start()
        await membership.start()
        if runner is not None:
            await runner.start()
        await linker.start()
        # What exists now (modules, routes, the store's metadata, a dialer per link) lives as
        # long as the process: frozen, the collector's full passes no longer walk it. They
        # were measured stalling a hub of 1,000 links for 40-170 ms at a time. No collection
        # first: it would cost every start 80 ms to free some 700 objects of garbage.
        gc.freeze()
        try:
            yield
        finally:
            await linker.stop()
            if runner is not None:
                await runner.stop()
            await membership.stop()
            if wakeups is not None:
                await wakeups.stop()
            await asyncio.to_thread(login_threads.shutdown, wait=True, cancel_futures=True)
            # A cancelled task leaves its asyncio.to_thread call running; wait for those
            # threads, or a connection they hold outlives the pool that dispose() closes.
            await asyncio.get_running_loop().shutdown_default_executor()
            database.dispose()

    app = FastAPI(
        title=f"tether workspace {settings.name}",
        version="1",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.ctx = ctx
    lifetimes = sessions.Lifetimes(ttl_s=settings.session_ttl_s, idle_s=settings.session_idle_s)
    app.state.sign_ins = sessions.SignIns(ctx, lifetimes)
    app.state.login_threads = login_threads
    app.state.settings = settings
    app.state.runner = runner
    app.state.membership = membership
    app.state.linker = linker
    web_errors.install(app)
    app.add_middleware(
        LinkLane,
        listener=linker.listener,
        api_prefix=API_PREFIX,
        max_body_bytes=settings.max_body_bytes,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # outside: it sees all
    app.add_middleware(SecurityHeaders)  # outermost: every answer gets them, a 413 too

    api = APIRouter(prefix=API_PREFIX)

    @api.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Open: whether the workspace serves, and how its executions are confined."""
        confined = runner.sandbox if runner is not None else {"sandbox": "no runner"}
        return {"status": "ok", "workspace": settings.name, **confined}

    modules = (
        flows,
        executions,
        user_routes,
        setting_routes,
        files,
        sync_configs,
        processes,
        connectors,
        message_routes,
    )
    for module in modules:
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(pages.router)
    app.mount(pages.STATIC_PATH, pages.static_files(), name="static")
    describe = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI keeps the document it made; completing it again changes nothing.
        return contract.document(describe())

    app.openapi = openapi  # type: ignore[method-assign]
    return app
