"""How every Kafka client of the project authenticates: one place builds the options per library.

The broker takes SASL/SCRAM-SHA-512 only (SECURITY.md, "Accounts and secrets"); each process connects
as its account (``settings.kafka_username``: ingest, worker, trace, dispatcher, admin for the CLI and
the tests) with the password of this installation. kafka-python and aiokafka spell the options the
same way; faust takes a credentials object; librdkafka (kcat) takes ``key=value`` properties.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from truyvet.settings import CommonSettings

if TYPE_CHECKING:
    import faust


def security_options(settings: CommonSettings) -> dict[str, Any]:
    """Keyword arguments of a kafka-python or aiokafka client that authenticate it (no address)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    return {
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_username,
        "sasl_plain_password": settings.kafka_secret(),
    }


def client_kwargs(settings: CommonSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security options: ``KafkaProducer(**client_kwargs(s), acks=...)``;
    the same keywords serve kafka-python (producer, consumer, admin) and aiokafka."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **security_options(settings)}


def faust_credentials(settings: CommonSettings) -> faust.SASLCredentials | None:
    """``broker_credentials`` of a faust app."""
    import faust

    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    return faust.SASLCredentials(username=settings.kafka_username, password=settings.kafka_secret(),
                                 mechanism=settings.kafka_sasl_mechanism)


def librdkafka_dir(data_dir: Path) -> Path | None:
    """A folder holding a ``librdkafka.so.1`` that can authenticate to Kafka 4 (``LD_LIBRARY_PATH``).

    librdkafka before 2.6.1 (Debian 12's kcat links 2.0.2) sends a wrong SCRAM nonce that Kafka 4
    refuses (confluentinc/librdkafka#4895); the confluent-kafka wheel carries a current build.
    """
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        return None
    libs = sorted((Path(spec.origin).parent.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if not libs:
        return None
    target = data_dir / "librdkafka"
    target.mkdir(parents=True, exist_ok=True)
    link = target / "librdkafka.so.1"
    if not link.exists() or link.resolve() != libs[0].resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(libs[0])
    return target


def librdkafka_properties(settings: CommonSettings) -> dict[str, str]:
    """Properties for librdkafka clients (kcat ``-F FILE``, confluent-kafka), as ``key=value`` lines."""
    props = {"bootstrap.servers": settings.kafka_bootstrap,
             "security.protocol": settings.kafka_security_protocol.lower()}
    if settings.kafka_security_protocol != "PLAINTEXT":
        props |= {"sasl.mechanism": settings.kafka_sasl_mechanism, "sasl.username": settings.kafka_username,
                  "sasl.password": settings.kafka_secret()}
    return props
