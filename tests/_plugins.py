"""Scheduler plugins for tests; importable without scikit-learn (they run in the
scheduler, which distsk keeps free of it)."""


try:
    from distributed.diagnostics.plugin import SchedulerPlugin
except ImportError:  # pragma: no cover - distributed is a core dependency
    SchedulerPlugin = object


class TaskHighWater(SchedulerPlugin):
    """Scheduler plugin: the most tasks the scheduler held at once (any state).

    Runs in the scheduler process (importable there: the test clusters put the repo
    root on PYTHONPATH); read back with ``TaskHighWater.read(client)``.
    """

    name = "distsk-test-task-high-water"

    def __init__(self):
        self.max_tasks = 0
        self.max_batches = 0
        self.scheduler = None

    async def start(self, scheduler):
        self.scheduler = scheduler

    def transition(self, key, start, finish, *args, **kwargs):
        tasks = self.scheduler.tasks
        self.max_tasks = max(self.max_tasks, len(tasks))
        if finish in ("processing", "no-worker", "queued", "waiting"):
            batches = sum(1 for k in tasks if str(k).startswith("distsk-"))
            self.max_batches = max(self.max_batches, batches)

    @classmethod
    def read(cls, client):
        def get(dask_scheduler):
            plugin = dask_scheduler.plugins[cls.name]
            return {"max_tasks": plugin.max_tasks, "max_batches": plugin.max_batches}

        return client.run_on_scheduler(get)
