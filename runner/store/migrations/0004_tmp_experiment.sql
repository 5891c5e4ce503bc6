DROP INDEX tasker.steps_task;
