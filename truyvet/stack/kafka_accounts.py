"""Kafka accounts (SASL/SCRAM-SHA-512) and what each may do (ACLs), made through the admin API.

The admin is the super user (``super.users``); its credential is written at format time. Every other
account gets exactly the ACLs below, on this installation's topic names (``settings.topic``):

======================  ==========================================================================
device                  write ``scans`` (devices that send scans straight to Kafka, kcat)
ingest                  write ``scans``, ``venues``, ``alerts`` (health declarations' alerts, issue 15)
worker                  read ``scans``, ``exposure-matching``, ``traced-persons``; write ``scans``
                        (unkeyed scans re-keyed), ``scans-dlq``, ``exposure-matching``, ``alerts``,
                        ``traced-persons`` (contacts found by late visits);
                        its groups, changelogs and faust's leader
                        topic (names starting with ``truyvet-``, the app id's prefix)
trace                   write ``traced-persons``, ``exposure-matching``, ``alerts`` (case registration)
dispatcher              read ``alerts`` (its group); write ``alerts-dlq``
======================  ==========================================================================
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialUpsertion,
)

from truyvet import secretstore
from truyvet.events import Topics
from truyvet.exceptions import StackError
from truyvet.settings import CommonSettings
from truyvet.stack.processes import wait_until

logger = logging.getLogger(__name__)

# Stream worker app ids (STREAMS_APP_ID) start with this; their groups and changelogs do too.
APP_ID_PREFIX = "truyvet-"
DISPATCHER_GROUP = "truyvet-alert-dispatcher"

READ, WRITE = "read", "write"

# role -> [(logical topic, read or write)]
TOPIC_RIGHTS: dict[str, list[tuple[str, str]]] = {
    "device": [(Topics.SCANS, WRITE)],
    "ingest": [(Topics.SCANS, WRITE), (Topics.VENUES, WRITE), (Topics.ALERTS, WRITE)],  # alerts: issue 15
    "worker": [(Topics.SCANS, READ), (Topics.EXPOSURE_MATCHING, READ), (Topics.TRACED, READ),
               (Topics.SCANS, WRITE), (Topics.SCANS_DLQ, WRITE), (Topics.EXPOSURE_MATCHING, WRITE),
               (Topics.ALERTS, WRITE), (Topics.TRACED, WRITE)],
    "trace": [(Topics.TRACED, WRITE), (Topics.EXPOSURE_MATCHING, WRITE), (Topics.ALERTS, WRITE)],
    "dispatcher": [(Topics.ALERTS, READ), (Topics.ALERTS_DLQ, WRITE)],
}
ROLES = ("admin", *TOPIC_RIGHTS)


def _acl(user: str, resource: ResourceType, name: str, op: ACLOperation,
         pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL) -> ACL:
    return ACL(principal=f"User:{user}", host="*", operation=op, permission_type=ACLPermissionType.ALLOW,
               resource_pattern=ResourcePattern(resource, name, pattern))


def role_acls(role: str, settings: CommonSettings) -> list[ACL]:
    """The ACLs of ``role`` for this installation's topic names."""
    acls = []
    for topic, right in TOPIC_RIGHTS[role]:
        ops = (ACLOperation.READ,) if right == READ else (ACLOperation.WRITE,)
        for op in (*ops, ACLOperation.DESCRIBE):
            acls.append(_acl(role, ResourceType.TOPIC, settings.topic(topic), op))
    prefixed = ACLResourcePatternType.PREFIXED
    if role == "worker":
        for op in (ACLOperation.READ, ACLOperation.WRITE, ACLOperation.CREATE, ACLOperation.DESCRIBE,
                   ACLOperation.DESCRIBE_CONFIGS):
            acls.append(_acl(role, ResourceType.TOPIC, APP_ID_PREFIX, op, prefixed))
        for op in (ACLOperation.READ, ACLOperation.DESCRIBE):
            acls.append(_acl(role, ResourceType.GROUP, APP_ID_PREFIX, op, prefixed))
    if role == "dispatcher":
        for op in (ACLOperation.READ, ACLOperation.DESCRIBE):
            acls.append(_acl(role, ResourceType.GROUP, settings.topic_prefix + DISPATCHER_GROUP, op, prefixed))
    return acls


def ensure_accounts(admin: KafkaAdminClient, settings: CommonSettings, roles: tuple[str, ...] | None = None) -> None:
    """SCRAM credentials of ``roles`` (default: every service role) from this installation's passwords,
    and their ACLs on the current topic names. Idempotent (an existing credential is set again)."""
    roles = roles or tuple(TOPIC_RIGHTS)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise StackError(f"unknown Kafka role(s) {unknown}; known: {', '.join(ROLES)}")
    upserts = [UserScramCredentialUpsertion(role, "SCRAM-SHA-512",
                                            secretstore.ensure_secret(settings.data_dir,
                                                                      secretstore.kafka_password_name(role)))
               for role in roles if role != "admin"]
    if upserts:
        errors = {user: err for user, err in admin.alter_user_scram_credentials(upserts).items() if err}
        if errors:
            raise StackError("Kafka SCRAM credentials could not be set", errors=errors)
    acls = [acl for role in roles if role != "admin" for acl in role_acls(role, settings)]
    if acls:
        result = admin.create_acls(acls)
        if result["failed"]:
            raise StackError("Kafka ACLs could not be created", failed=[repr(f) for f in result["failed"]][:5])
        # The controller has them; a broker applies them a moment later (1.5 s here right after a start),
        # and a service started meanwhile is refused (TopicAuthorizationFailed) and exits.
        wait_until(lambda: not missing_acls(admin, acls), timeout=60, what="Kafka ACLs served by the broker")


ALL_ACLS = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
                     resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))


def missing_acls(admin: KafkaAdminClient, acls: list[ACL]) -> list[ACL]:
    """Those of ``acls`` the broker answering ``DescribeAcls`` does not have yet."""
    served, _ = admin.describe_acls(ALL_ACLS)
    have = set(served)
    return [acl for acl in acls if acl not in have]
