"""`rushcart worker`: an RQ SimpleWorker plus RQ's CronScheduler for the periodic jobs."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

import redis
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from jobs import queues, runtime
from jobs.runtime import JobConfig
from jobs.schedule import periodic_jobs
from server.settings import Settings

log = logging.getLogger("rushcart.worker")


def job_config(settings: Settings) -> JobConfig:
    return JobConfig(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        persist_batch_size=settings.persist_batch_size,
        redis_buckets=settings.redis_buckets,
        guest_cart_ttl_days=settings.guest_cart_ttl_days,
        customer_cart_ttl_days=settings.customer_cart_ttl_days,
        statement_cache=settings.statement_cache,
        marks_writes=settings.database_read_url not in {"", settings.database_url},
        in_steps=settings.in_steps,
        redis_cluster=settings.redis_cluster,
        wait_replicas=settings.redis_wait_replicas,
    )


def intervals(settings: Settings) -> dict[str, int]:
    return {
        "expire": settings.expiry_sweep_seconds,
        "persist_sweep": settings.persist_sweep_seconds,
        "cart_flush": settings.cart_flush_seconds,
        "payment_sweep": settings.persist_sweep_seconds,
        "mirror_sweep": settings.persist_sweep_seconds,
        "reservation_sweep": settings.persist_sweep_seconds,
    }


# How long a stopping worker waits for RQ's scheduler process before killing it.
SCHEDULER_STOP_SECONDS = 5.0


class Worker(SimpleWorker):
    """RQ's SimpleWorker, stopping its scheduler process within SCHEDULER_STOP_SECONDS.

    RQ forks the scheduler and the child installs its own signal handlers only once it runs; a
    SIGTERM that reaches it before then runs the worker's inherited handler instead, which only asks
    the child's copy of the worker to stop, so the child never ends and RQ's stop_scheduler waits
    for it forever: the worker ignores its own SIGTERM. The child holds no job (its work, moving
    scheduled jobs to their queues, is repeated by the next scheduler), so killing it is safe."""

    def stop_scheduler(self) -> None:
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.pid:
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            log.warning("RQ's scheduler process did not stop on SIGTERM; killing it")
            process.kill()
            process.join()


def _run_cron(scheduler: CronScheduler, stop: threading.Event) -> None:
    # CronScheduler.start() wants the main thread for its signal handlers; the worker has that,
    # so this thread drives the same scheduler through its public steps instead.
    scheduler.register_birth()
    try:
        while not stop.is_set():
            try:
                if scheduler.enqueue_jobs():
                    scheduler.save()
                scheduler.heartbeat()
            except redis.RedisError:
                log.exception("periodic scheduler could not reach Redis; retrying")
            stop.wait(max(0.2, min(scheduler.calculate_sleep_interval(), 1.0)))
    finally:
        try:
            scheduler.register_death()
        except redis.RedisError:
            pass


def run_worker(settings: Settings, *, burst: bool = False, with_cron: bool = True) -> None:
    # RQ's queues, registries and scheduler live on the queue Redis; the jobs' work items on the state Redis.
    connection = redis.Redis.from_url(settings.effective_queue_redis_url)
    runtime.configure(job_config(settings))
    stop = threading.Event()
    cron_thread = None
    if with_cron and not burst:
        scheduler = CronScheduler(connection=connection)
        for job in periodic_jobs(intervals(settings)):
            scheduler.register(job.func, job.queue, interval=job.interval_seconds, result_ttl=60)
        if scheduler.get_jobs():
            cron_thread = threading.Thread(target=_run_cron, args=(scheduler, stop), daemon=True)
            cron_thread.start()
    worker = Worker([Queue(name, connection=connection) for name in queues.ALL], connection=connection)
    try:
        worker.work(with_scheduler=not burst, burst=burst, logging_level="INFO")
    finally:
        stop.set()
        if cron_thread is not None:
            cron_thread.join(timeout=5)
        runtime.shutdown()
