"""Logging filters the settings attach to the console handler."""

import logging


class DropPy4JCallTraces(logging.Filter):
    """py4j, the trainer's bridge to Spark, logs every failed call to the JVM with its trace on the root logger; the
    trainer reports the failure itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and "/py4j/" in record.pathname.replace("\\", "/"))
