"""One router per resource: tasks, dead letter queue, queues, roles, health."""
