"""How every Kafka client of the project authenticates: one place builds the options per library.

The broker takes SASL/SCRAM-SHA-512 only (SECURITY.md, "Accounts and secrets"); each process connects
as its account (``settings.kafka_username``: ingest, worker, trace, dispatcher, admin for the CLI and
the tests) with the password of this installation. kafka-python and aiokafka spell the options the
same way; faust takes a credentials object; librdkafka (kcat) takes ``key=value`` properties.
"""

from __future__ import annotations

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


def librdkafka_properties(settings: CommonSettings) -> dict[str, str]:
    """Properties for librdkafka clients (kcat ``-F FILE``, confluent-kafka), as ``key=value`` lines."""
    props = {"bootstrap.servers": settings.kafka_bootstrap,
             "security.protocol": settings.kafka_security_protocol.lower()}
    if settings.kafka_security_protocol != "PLAINTEXT":
        props |= {"sasl.mechanism": settings.kafka_sasl_mechanism, "sasl.username": settings.kafka_username,
                  "sasl.password": settings.kafka_secret()}
    return props
