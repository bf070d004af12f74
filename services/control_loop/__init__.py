"""The control loop: one pass of background work, its heartbeat and the leader lock."""
