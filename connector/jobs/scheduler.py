"""APScheduler in the background: one cron job per model schedule, kept in step with the store."""
from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler

from model_store import Store

from ..services import schedules


class RetrainScheduler:
    def __init__(self, store: Store, config: dict, submit):
        self.store, self.config, self.submit = store, config, submit
        # One job instance at a time per model; a missed firing runs once when the server is back.
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})

    def start(self) -> None:
        self.scheduler.start()
        for model_id, cron in schedules.active_schedules(self.store):
            self.set(model_id, cron)

    def set(self, model_id: int, cron: str):
        job = self.scheduler.add_job(self.fire, schedules.parse_cron(cron), args=[model_id],
                                     id=f"retrain-{model_id}", replace_existing=True)
        return job.next_run_time

    def remove(self, model_id: int) -> None:
        if self.scheduler.get_job(f"retrain-{model_id}"):
            self.scheduler.remove_job(f"retrain-{model_id}")

    def next_run(self, model_id: int):
        job = self.scheduler.get_job(f"retrain-{model_id}")
        return job.next_run_time if job else None

    def fire(self, model_id: int) -> str:
        return schedules.fire(self.store, self.config, model_id, self.submit)

    def close(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
