"""Operations: the demo, (later) the scheduler, settings and health checks."""
