"""Every error kengine raises, in one place. Their public name is ``kengine.errors``, which
re-exports this module: they are defined here, beside the compiled core that raises them, so
that kengine_ext imports nothing of the Python layer above it (kengine -> kengine_ext, one way).

Two families:

* :class:`BrokerError` subclasses, one per Kafka error code, generated from Kafka's own error
  table (``tools/gen_errors.py``). Each class carries ``code``, ``name``, ``retriable`` (whether
  the Java client treats it as retriable), ``invalid_metadata`` (the client must refresh metadata
  before retrying) and the broker's ``default_message``. :func:`error_for_code` maps a code from
  a response to an instance; an unknown code gives :class:`UnknownBrokerError` keeping the number.
* Client-side errors (configuration, serialization, timeouts, protocol decoding, misuse).

``retriable`` tells whether kengine retries the failure by itself (within
``delivery.timeout.ms``); an error that reaches a future or callback has already been retried
as far as allowed.
"""
from __future__ import annotations

from typing import Any, ClassVar

__all__: list[str] = [
    "KafkaError", "BrokerError", "UnknownBrokerError", "error_for_code", "BROKER_ERRORS",
    "AuthorizationError", "AuthenticationError", "KafkaTimeoutError", "ConfigError",
    "SerializationError", "RecordTooLargeError", "CorruptRecordError", "ProtocolError",
    "IllegalStateError", "ProducerClosedError", "PartitionerError", "InvalidPartitionError",
    "TransactionAbortedError", "TransactionNotRecoverableError", "BufferFullError",
    "DeliveryTimeoutError", "delivery_timeout", "SchemaRegistryError", "ProducerForkedError",
    "RecordPurgedError", "RecordRejectedError", "GroupMetadataError", "InvalidOffsetError",
    "IngestError",
]

#: The classes' public home (the documented name, and what tracebacks and pickles show):
#: kengine.errors re-exports every name of ``__all__``.
PUBLIC_MODULE = "kengine.errors"


class KafkaError(Exception):
    """Base class of every error raised by kengine.

    ``maybe_written`` answers, for a record whose delivery failed, whether it may be in the log
    all the same: True when an attempt may have been written (its answer was lost, it was in
    flight when ``delivery.timeout.ms`` passed, or the broker wrote it but could not replicate
    it in time); resending such a record may duplicate it. False when no attempt was written
    (the broker refused every one, or none was sent)."""

    retriable: ClassVar[bool] = False
    maybe_written: bool = False


class AuthorizationError(KafkaError):
    """The broker denied an operation to this principal (an ACL is missing). Never retried."""


class AuthenticationError(KafkaError):
    """TLS or SASL authentication failed. Never retried: fix the credentials or settings."""


class KafkaTimeoutError(KafkaError, TimeoutError):
    """An operation did not finish in its time budget (``max.block.ms``,
    ``delivery.timeout.ms``, ``request.timeout.ms`` or a caller's timeout)."""

    retriable = True


class BrokerError(KafkaError):
    """An error code returned by a Kafka broker."""

    code: ClassVar[int] = -1
    name: ClassVar[str] = "UNKNOWN_SERVER_ERROR"
    default_message: ClassVar[str] = ""
    invalid_metadata: ClassVar[bool] = False

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or self.default_message
        #: where the error happened: topic, partition, broker, api... (as known)
        self.context = context
        super().__init__(self.message)

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"[{self.name} ({self.code})] {self.message}" + (f" ({where})" if where else "")


# BEGIN GENERATED BROKER ERRORS (tools/gen_errors.py)


class UnknownServerError(BrokerError):
    code, name, retriable = -1, "UNKNOWN_SERVER_ERROR", False
    default_message = "The server experienced an unexpected error when processing the request."


class OffsetOutOfRangeError(BrokerError):
    code, name, retriable = 1, "OFFSET_OUT_OF_RANGE", False
    default_message = "The requested offset is not within the range of offsets maintained by the server."


class CorruptMessageError(BrokerError):
    code, name, retriable = 2, "CORRUPT_MESSAGE", True
    default_message = "This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt."


class UnknownTopicOrPartitionError(BrokerError):
    code, name, retriable = 3, "UNKNOWN_TOPIC_OR_PARTITION", True
    invalid_metadata = True
    default_message = "This server does not host this topic-partition."


class InvalidFetchSizeError(BrokerError):
    code, name, retriable = 4, "INVALID_FETCH_SIZE", False
    default_message = "The requested fetch size is invalid."


class LeaderNotAvailableError(BrokerError):
    code, name, retriable = 5, "LEADER_NOT_AVAILABLE", True
    invalid_metadata = True
    default_message = "There is no leader for this topic-partition as we are in the middle of a leadership election."


class NotLeaderOrFollowerError(BrokerError):
    code, name, retriable = 6, "NOT_LEADER_OR_FOLLOWER", True
    invalid_metadata = True
    default_message = "For requests intended only for the leader, this error indicates that the broker is not the current leader. For requests intended for any replica, this error indicates that the broker is not a replica of the topic partition."


class RequestTimedOutError(BrokerError, KafkaTimeoutError):
    code, name, retriable = 7, "REQUEST_TIMED_OUT", True
    default_message = "The request timed out."


class BrokerNotAvailableError(BrokerError):
    code, name, retriable = 8, "BROKER_NOT_AVAILABLE", False
    default_message = "The broker is not available."


class ReplicaNotAvailableError(BrokerError):
    code, name, retriable = 9, "REPLICA_NOT_AVAILABLE", True
    invalid_metadata = True
    default_message = "The replica is not available for the requested topic-partition. Produce/Fetch requests and other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the broker is not a replica of the topic-partition."


class MessageTooLargeError(BrokerError):
    code, name, retriable = 10, "MESSAGE_TOO_LARGE", False
    default_message = "The request included a message larger than the max message size the server will accept."


class StaleControllerEpochError(BrokerError):
    code, name, retriable = 11, "STALE_CONTROLLER_EPOCH", False
    default_message = "The controller moved to another broker."


class OffsetMetadataTooLargeError(BrokerError):
    code, name, retriable = 12, "OFFSET_METADATA_TOO_LARGE", False
    default_message = "The metadata field of the offset request was too large."


class NetworkError(BrokerError):
    code, name, retriable = 13, "NETWORK_EXCEPTION", True
    default_message = "The server disconnected before a response was received."


class CoordinatorLoadInProgressError(BrokerError):
    code, name, retriable = 14, "COORDINATOR_LOAD_IN_PROGRESS", True
    default_message = "The coordinator is loading and hence can't process requests."


class CoordinatorNotAvailableError(BrokerError):
    code, name, retriable = 15, "COORDINATOR_NOT_AVAILABLE", True
    default_message = "The coordinator is not available."


class NotCoordinatorError(BrokerError):
    code, name, retriable = 16, "NOT_COORDINATOR", True
    default_message = "This is not the correct coordinator."


class InvalidTopicError(BrokerError):
    code, name, retriable = 17, "INVALID_TOPIC_EXCEPTION", False
    default_message = "The request attempted to perform an operation on an invalid topic."


class RecordListTooLargeError(BrokerError):
    code, name, retriable = 18, "RECORD_LIST_TOO_LARGE", False
    default_message = "The request included message batch larger than the configured segment size on the server."


class NotEnoughReplicasError(BrokerError):
    code, name, retriable = 19, "NOT_ENOUGH_REPLICAS", True
    default_message = "Messages are rejected since there are fewer in-sync replicas than required."


class NotEnoughReplicasAfterAppendError(BrokerError):
    code, name, retriable = 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", True
    default_message = "Messages are written to the log, but to fewer in-sync replicas than required."


class InvalidRequiredAcksError(BrokerError):
    code, name, retriable = 21, "INVALID_REQUIRED_ACKS", False
    default_message = "Produce request specified an invalid value for required acks."


class IllegalGenerationError(BrokerError):
    code, name, retriable = 22, "ILLEGAL_GENERATION", False
    default_message = "Specified group generation id is not valid."


class InconsistentGroupProtocolError(BrokerError):
    code, name, retriable = 23, "INCONSISTENT_GROUP_PROTOCOL", False
    default_message = "The group member's supported protocols are incompatible with those of existing members or first group member tried to join with empty protocol type or empty protocol list."


class InvalidGroupIdError(BrokerError):
    code, name, retriable = 24, "INVALID_GROUP_ID", False
    default_message = "The configured groupId is invalid."


class UnknownMemberIdError(BrokerError):
    code, name, retriable = 25, "UNKNOWN_MEMBER_ID", False
    default_message = "The coordinator is not aware of this member."


class InvalidSessionTimeoutError(BrokerError):
    code, name, retriable = 26, "INVALID_SESSION_TIMEOUT", False
    default_message = "The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms)."


class RebalanceInProgressError(BrokerError):
    code, name, retriable = 27, "REBALANCE_IN_PROGRESS", False
    default_message = "The group is rebalancing, so a rejoin is needed."


class InvalidCommitOffsetSizeError(BrokerError):
    code, name, retriable = 28, "INVALID_COMMIT_OFFSET_SIZE", False
    default_message = "The committing offset data size is not valid."


class TopicAuthorizationFailedError(BrokerError, AuthorizationError):
    code, name, retriable = 29, "TOPIC_AUTHORIZATION_FAILED", False
    default_message = "Topic authorization failed."


class GroupAuthorizationFailedError(BrokerError, AuthorizationError):
    code, name, retriable = 30, "GROUP_AUTHORIZATION_FAILED", False
    default_message = "Group authorization failed."


class ClusterAuthorizationFailedError(BrokerError, AuthorizationError):
    code, name, retriable = 31, "CLUSTER_AUTHORIZATION_FAILED", False
    default_message = "Cluster authorization failed."


class InvalidTimestampError(BrokerError):
    code, name, retriable = 32, "INVALID_TIMESTAMP", False
    default_message = "The timestamp of the message is out of acceptable range."


class UnsupportedSaslMechanismError(BrokerError, AuthenticationError):
    code, name, retriable = 33, "UNSUPPORTED_SASL_MECHANISM", False
    default_message = "The broker does not support the requested SASL mechanism."


class IllegalSaslStateError(BrokerError, AuthenticationError):
    code, name, retriable = 34, "ILLEGAL_SASL_STATE", False
    default_message = "Request is not valid given the current SASL state."


class UnsupportedVersionError(BrokerError):
    code, name, retriable = 35, "UNSUPPORTED_VERSION", False
    default_message = "The version of API is not supported."


class TopicAlreadyExistsError(BrokerError):
    code, name, retriable = 36, "TOPIC_ALREADY_EXISTS", False
    default_message = "Topic with this name already exists."


class InvalidPartitionsError(BrokerError):
    code, name, retriable = 37, "INVALID_PARTITIONS", False
    default_message = "Number of partitions is below 1."


class InvalidReplicationFactorError(BrokerError):
    code, name, retriable = 38, "INVALID_REPLICATION_FACTOR", False
    default_message = "Replication factor is below 1 or larger than the number of available brokers."


class InvalidReplicaAssignmentError(BrokerError):
    code, name, retriable = 39, "INVALID_REPLICA_ASSIGNMENT", False
    default_message = "Replica assignment is invalid."


class InvalidConfigError(BrokerError):
    code, name, retriable = 40, "INVALID_CONFIG", False
    default_message = "Configuration is invalid."


class NotControllerError(BrokerError):
    code, name, retriable = 41, "NOT_CONTROLLER", True
    invalid_metadata = True
    default_message = "This is not the correct controller for this cluster."


class InvalidRequestError(BrokerError):
    code, name, retriable = 42, "INVALID_REQUEST", False
    default_message = "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details."


class UnsupportedForMessageFormatError(BrokerError):
    code, name, retriable = 43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", False
    default_message = "The message format version on the broker does not support the request."


class PolicyViolationError(BrokerError):
    code, name, retriable = 44, "POLICY_VIOLATION", False
    default_message = "Request parameters do not satisfy the configured policy."


class OutOfOrderSequenceNumberError(BrokerError):
    code, name, retriable = 45, "OUT_OF_ORDER_SEQUENCE_NUMBER", False
    default_message = "The broker received an out of order sequence number."


class DuplicateSequenceNumberError(BrokerError):
    code, name, retriable = 46, "DUPLICATE_SEQUENCE_NUMBER", False
    default_message = "The broker received a duplicate sequence number."


class InvalidProducerEpochError(BrokerError):
    code, name, retriable = 47, "INVALID_PRODUCER_EPOCH", False
    default_message = "Producer attempted to produce with an old epoch."


class InvalidTxnStateError(BrokerError):
    code, name, retriable = 48, "INVALID_TXN_STATE", False
    default_message = "The producer attempted a transactional operation in an invalid state."


class InvalidProducerIdMappingError(BrokerError):
    code, name, retriable = 49, "INVALID_PRODUCER_ID_MAPPING", False
    default_message = "The producer attempted to use a producer id which is not currently assigned to its transactional id."


class InvalidTransactionTimeoutError(BrokerError):
    code, name, retriable = 50, "INVALID_TRANSACTION_TIMEOUT", False
    default_message = "The transaction timeout is larger than the maximum value allowed by the broker (as configured by transaction.max.timeout.ms)."


class ConcurrentTransactionsError(BrokerError):
    code, name, retriable = 51, "CONCURRENT_TRANSACTIONS", True
    default_message = "The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing."


class TransactionCoordinatorFencedError(BrokerError):
    code, name, retriable = 52, "TRANSACTION_COORDINATOR_FENCED", False
    default_message = "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current coordinator for a given producer."


class TransactionalIdAuthorizationFailedError(BrokerError, AuthorizationError):
    code, name, retriable = 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", False
    default_message = "Transactional Id authorization failed."


class SecurityDisabledError(BrokerError):
    code, name, retriable = 54, "SECURITY_DISABLED", False
    default_message = "Security features are disabled."


class OperationNotAttemptedError(BrokerError):
    code, name, retriable = 55, "OPERATION_NOT_ATTEMPTED", False
    default_message = "The broker did not attempt to execute this operation. This may happen for batched RPCs where some operations in the batch failed, causing the broker to respond without trying the rest."


class KafkaStorageError(BrokerError):
    code, name, retriable = 56, "KAFKA_STORAGE_ERROR", True
    invalid_metadata = True
    default_message = "Disk error when trying to access log file on the disk."


class LogDirNotFoundError(BrokerError):
    code, name, retriable = 57, "LOG_DIR_NOT_FOUND", False
    default_message = "The user-specified log directory is not found in the broker config."


class SaslAuthenticationFailedError(BrokerError, AuthenticationError):
    code, name, retriable = 58, "SASL_AUTHENTICATION_FAILED", False
    default_message = "SASL Authentication failed."


class UnknownProducerIdError(BrokerError):
    code, name, retriable = 59, "UNKNOWN_PRODUCER_ID", False
    default_message = "This exception is raised by the broker if it could not locate the producer metadata associated with the producerId in question. This could happen if, for instance, the producer's records were deleted because their retention time had elapsed. Once the last records of the producerId are removed, the producer's metadata is removed from the broker, and future appends by the producer will return this exception."


class ReassignmentInProgressError(BrokerError):
    code, name, retriable = 60, "REASSIGNMENT_IN_PROGRESS", False
    default_message = "A partition reassignment is in progress."


class DelegationTokenAuthDisabledError(BrokerError):
    code, name, retriable = 61, "DELEGATION_TOKEN_AUTH_DISABLED", False
    default_message = "Delegation Token feature is not enabled."


class DelegationTokenNotFoundError(BrokerError):
    code, name, retriable = 62, "DELEGATION_TOKEN_NOT_FOUND", False
    default_message = "Delegation Token is not found on server."


class DelegationTokenOwnerMismatchError(BrokerError):
    code, name, retriable = 63, "DELEGATION_TOKEN_OWNER_MISMATCH", False
    default_message = "Specified Principal is not valid Owner/Renewer."


class DelegationTokenRequestNotAllowedError(BrokerError):
    code, name, retriable = 64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", False
    default_message = "Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation token authenticated channels."


class DelegationTokenAuthorizationFailedError(BrokerError, AuthorizationError):
    code, name, retriable = 65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED", False
    default_message = "Delegation Token authorization failed."


class DelegationTokenExpiredError(BrokerError):
    code, name, retriable = 66, "DELEGATION_TOKEN_EXPIRED", False
    default_message = "Delegation Token is expired."


class InvalidPrincipalTypeError(BrokerError):
    code, name, retriable = 67, "INVALID_PRINCIPAL_TYPE", False
    default_message = "Supplied principalType is not supported."


class NonEmptyGroupError(BrokerError):
    code, name, retriable = 68, "NON_EMPTY_GROUP", False
    default_message = "The group is not empty."


class GroupIdNotFoundError(BrokerError):
    code, name, retriable = 69, "GROUP_ID_NOT_FOUND", False
    default_message = "The group id does not exist."


class FetchSessionIdNotFoundError(BrokerError):
    code, name, retriable = 70, "FETCH_SESSION_ID_NOT_FOUND", True
    default_message = "The fetch session ID was not found."


class InvalidFetchSessionEpochError(BrokerError):
    code, name, retriable = 71, "INVALID_FETCH_SESSION_EPOCH", True
    default_message = "The fetch session epoch is invalid."


class ListenerNotFoundError(BrokerError):
    code, name, retriable = 72, "LISTENER_NOT_FOUND", True
    default_message = "There is no listener on the leader broker that matches the listener on which metadata request was processed."


class TopicDeletionDisabledError(BrokerError):
    code, name, retriable = 73, "TOPIC_DELETION_DISABLED", False
    default_message = "Topic deletion is disabled."


class FencedLeaderEpochError(BrokerError):
    code, name, retriable = 74, "FENCED_LEADER_EPOCH", True
    invalid_metadata = True
    default_message = "The leader epoch in the request is older than the epoch on the broker."


class UnknownLeaderEpochError(BrokerError):
    code, name, retriable = 75, "UNKNOWN_LEADER_EPOCH", True
    invalid_metadata = True
    default_message = "The leader epoch in the request is newer than the epoch on the broker."


class UnsupportedCompressionTypeError(BrokerError):
    code, name, retriable = 76, "UNSUPPORTED_COMPRESSION_TYPE", False
    default_message = "The requesting client does not support the compression type of given partition."


class StaleBrokerEpochError(BrokerError):
    code, name, retriable = 77, "STALE_BROKER_EPOCH", False
    default_message = "Broker epoch has changed."


class OffsetNotAvailableError(BrokerError):
    code, name, retriable = 78, "OFFSET_NOT_AVAILABLE", True
    default_message = "The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing."


class MemberIdRequiredError(BrokerError):
    code, name, retriable = 79, "MEMBER_ID_REQUIRED", False
    default_message = "The group member needs to have a valid member id before actually entering a consumer group."


class PreferredLeaderNotAvailableError(BrokerError):
    code, name, retriable = 80, "PREFERRED_LEADER_NOT_AVAILABLE", True
    default_message = "The preferred leader was not available."


class GroupMaxSizeReachedError(BrokerError):
    code, name, retriable = 81, "GROUP_MAX_SIZE_REACHED", False
    default_message = "The consumer group has reached its max size."


class FencedInstanceIdError(BrokerError):
    code, name, retriable = 82, "FENCED_INSTANCE_ID", False
    default_message = "The broker rejected this static consumer since another consumer with the same group.instance.id has registered with a different member.id."


class EligibleLeadersNotAvailableError(BrokerError):
    code, name, retriable = 83, "ELIGIBLE_LEADERS_NOT_AVAILABLE", True
    default_message = "Eligible topic partition leaders are not available."


class ElectionNotNeededError(BrokerError):
    code, name, retriable = 84, "ELECTION_NOT_NEEDED", True
    default_message = "Leader election not needed for topic partition."


class NoReassignmentInProgressError(BrokerError):
    code, name, retriable = 85, "NO_REASSIGNMENT_IN_PROGRESS", False
    default_message = "No partition reassignment is in progress."


class GroupSubscribedToTopicError(BrokerError):
    code, name, retriable = 86, "GROUP_SUBSCRIBED_TO_TOPIC", False
    default_message = "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it."


class InvalidRecordError(BrokerError):
    code, name, retriable = 87, "INVALID_RECORD", False
    default_message = "This record has failed the validation on broker and hence will be rejected."


class UnstableOffsetCommitError(BrokerError):
    code, name, retriable = 88, "UNSTABLE_OFFSET_COMMIT", True
    default_message = "There are unstable offsets that need to be cleared."


class ThrottlingQuotaExceededError(BrokerError):
    code, name, retriable = 89, "THROTTLING_QUOTA_EXCEEDED", True
    default_message = "The throttling quota has been exceeded."


class ProducerFencedError(BrokerError):
    code, name, retriable = 90, "PRODUCER_FENCED", False
    default_message = "There is a newer producer with the same transactionalId which fences the current one."


class ResourceNotFoundError(BrokerError):
    code, name, retriable = 91, "RESOURCE_NOT_FOUND", False
    default_message = "A request illegally referred to a resource that does not exist."


class DuplicateResourceError(BrokerError):
    code, name, retriable = 92, "DUPLICATE_RESOURCE", False
    default_message = "A request illegally referred to the same resource twice."


class UnacceptableCredentialError(BrokerError):
    code, name, retriable = 93, "UNACCEPTABLE_CREDENTIAL", False
    default_message = "Requested credential would not meet criteria for acceptability."


class InconsistentVoterSetError(BrokerError):
    code, name, retriable = 94, "INCONSISTENT_VOTER_SET", False
    default_message = "Indicates that the either the sender or recipient of a voter-only request is not one of the expected voters."


class InvalidUpdateVersionError(BrokerError):
    code, name, retriable = 95, "INVALID_UPDATE_VERSION", False
    default_message = "The given update version was invalid."


class FeatureUpdateFailedError(BrokerError):
    code, name, retriable = 96, "FEATURE_UPDATE_FAILED", False
    default_message = "Unable to update finalized features due to an unexpected server error."


class PrincipalDeserializationFailureError(BrokerError):
    code, name, retriable = 97, "PRINCIPAL_DESERIALIZATION_FAILURE", False
    default_message = "Request principal deserialization failed during forwarding. This indicates an internal error on the broker cluster security setup."


class SnapshotNotFoundError(BrokerError):
    code, name, retriable = 98, "SNAPSHOT_NOT_FOUND", False
    default_message = "Requested snapshot was not found."


class UnknownTopicIdError(BrokerError):
    code, name, retriable = 100, "UNKNOWN_TOPIC_ID", True
    invalid_metadata = True
    default_message = "This server does not host this topic ID."


class DuplicateBrokerRegistrationError(BrokerError):
    code, name, retriable = 101, "DUPLICATE_BROKER_REGISTRATION", False
    default_message = "This broker ID is already in use."


class BrokerIdNotRegisteredError(BrokerError):
    code, name, retriable = 102, "BROKER_ID_NOT_REGISTERED", False
    default_message = "The given broker ID was not registered."


class InconsistentTopicIdError(BrokerError):
    code, name, retriable = 103, "INCONSISTENT_TOPIC_ID", True
    invalid_metadata = True
    default_message = "The log's topic ID did not match the topic ID in the request."


class InconsistentClusterIdError(BrokerError):
    code, name, retriable = 104, "INCONSISTENT_CLUSTER_ID", False
    default_message = "The clusterId in the request does not match that found on the server."


class TransactionalIdNotFoundError(BrokerError):
    code, name, retriable = 105, "TRANSACTIONAL_ID_NOT_FOUND", False
    default_message = "The transactionalId could not be found."


class FetchSessionTopicIdError(BrokerError):
    code, name, retriable = 106, "FETCH_SESSION_TOPIC_ID_ERROR", True
    default_message = "The fetch session encountered inconsistent topic ID usage."


class IneligibleReplicaError(BrokerError):
    code, name, retriable = 107, "INELIGIBLE_REPLICA", False
    default_message = "The new ISR contains at least one ineligible replica."


class NewLeaderElectedError(BrokerError):
    code, name, retriable = 108, "NEW_LEADER_ELECTED", False
    default_message = "The AlterPartition request successfully updated the partition state but the leader has changed."


class OffsetMovedToTieredStorageError(BrokerError):
    code, name, retriable = 109, "OFFSET_MOVED_TO_TIERED_STORAGE", False
    default_message = "The requested offset is moved to tiered storage."


class FencedMemberEpochError(BrokerError):
    code, name, retriable = 110, "FENCED_MEMBER_EPOCH", False
    default_message = "The member epoch is fenced by the group coordinator. The member must abandon all its partitions and rejoin."


class UnreleasedInstanceIdError(BrokerError):
    code, name, retriable = 111, "UNRELEASED_INSTANCE_ID", False
    default_message = "The instance ID is still used by another member in the consumer group. That member must leave first."


class UnsupportedAssignorError(BrokerError):
    code, name, retriable = 112, "UNSUPPORTED_ASSIGNOR", False
    default_message = "The assignor or its version range is not supported by the consumer group."


class StaleMemberEpochError(BrokerError):
    code, name, retriable = 113, "STALE_MEMBER_EPOCH", False
    default_message = "The member epoch is stale. The member must retry after receiving its updated member epoch via the ConsumerGroupHeartbeat API."


class MismatchedEndpointTypeError(BrokerError):
    code, name, retriable = 114, "MISMATCHED_ENDPOINT_TYPE", False
    default_message = "The request was sent to an endpoint of the wrong type."


class UnsupportedEndpointTypeError(BrokerError):
    code, name, retriable = 115, "UNSUPPORTED_ENDPOINT_TYPE", False
    default_message = "This endpoint type is not supported yet."


class UnknownControllerIdError(BrokerError):
    code, name, retriable = 116, "UNKNOWN_CONTROLLER_ID", False
    default_message = "This controller ID is not known."


class UnknownSubscriptionIdError(BrokerError):
    code, name, retriable = 117, "UNKNOWN_SUBSCRIPTION_ID", False
    default_message = "Client sent a push telemetry request with an invalid or outdated subscription ID."


class TelemetryTooLargeError(BrokerError):
    code, name, retriable = 118, "TELEMETRY_TOO_LARGE", False
    default_message = "Client sent a push telemetry request larger than the maximum size the broker will accept."


class InvalidRegistrationError(BrokerError):
    code, name, retriable = 119, "INVALID_REGISTRATION", False
    default_message = "The controller has considered the broker registration to be invalid."


class TransactionAbortableError(BrokerError):
    code, name, retriable = 120, "TRANSACTION_ABORTABLE", False
    default_message = "The server encountered an error with the transaction. The client can abort the transaction to continue using this transactional ID."


class InvalidRecordStateError(BrokerError):
    code, name, retriable = 121, "INVALID_RECORD_STATE", False
    default_message = "The record state is invalid. The acknowledgement of delivery could not be completed."


class ShareSessionNotFoundError(BrokerError):
    code, name, retriable = 122, "SHARE_SESSION_NOT_FOUND", True
    default_message = "The share session was not found."


class InvalidShareSessionEpochError(BrokerError):
    code, name, retriable = 123, "INVALID_SHARE_SESSION_EPOCH", True
    default_message = "The share session epoch is invalid."


class FencedStateEpochError(BrokerError):
    code, name, retriable = 124, "FENCED_STATE_EPOCH", False
    default_message = "The share coordinator rejected the request because the share-group state epoch did not match."


class InvalidVoterKeyError(BrokerError):
    code, name, retriable = 125, "INVALID_VOTER_KEY", False
    default_message = "The voter key doesn't match the receiving replica's key."


class DuplicateVoterError(BrokerError):
    code, name, retriable = 126, "DUPLICATE_VOTER", False
    default_message = "The voter is already part of the set of voters."


class VoterNotFoundError(BrokerError):
    code, name, retriable = 127, "VOTER_NOT_FOUND", False
    default_message = "The voter is not part of the set of voters."


class InvalidRegularExpressionError(BrokerError):
    code, name, retriable = 128, "INVALID_REGULAR_EXPRESSION", False
    default_message = "The regular expression is not valid."


#: Every broker error class by its code.
BROKER_ERRORS: dict[int, type[BrokerError]] = {
    -1: UnknownServerError,
    1: OffsetOutOfRangeError,
    2: CorruptMessageError,
    3: UnknownTopicOrPartitionError,
    4: InvalidFetchSizeError,
    5: LeaderNotAvailableError,
    6: NotLeaderOrFollowerError,
    7: RequestTimedOutError,
    8: BrokerNotAvailableError,
    9: ReplicaNotAvailableError,
    10: MessageTooLargeError,
    11: StaleControllerEpochError,
    12: OffsetMetadataTooLargeError,
    13: NetworkError,
    14: CoordinatorLoadInProgressError,
    15: CoordinatorNotAvailableError,
    16: NotCoordinatorError,
    17: InvalidTopicError,
    18: RecordListTooLargeError,
    19: NotEnoughReplicasError,
    20: NotEnoughReplicasAfterAppendError,
    21: InvalidRequiredAcksError,
    22: IllegalGenerationError,
    23: InconsistentGroupProtocolError,
    24: InvalidGroupIdError,
    25: UnknownMemberIdError,
    26: InvalidSessionTimeoutError,
    27: RebalanceInProgressError,
    28: InvalidCommitOffsetSizeError,
    29: TopicAuthorizationFailedError,
    30: GroupAuthorizationFailedError,
    31: ClusterAuthorizationFailedError,
    32: InvalidTimestampError,
    33: UnsupportedSaslMechanismError,
    34: IllegalSaslStateError,
    35: UnsupportedVersionError,
    36: TopicAlreadyExistsError,
    37: InvalidPartitionsError,
    38: InvalidReplicationFactorError,
    39: InvalidReplicaAssignmentError,
    40: InvalidConfigError,
    41: NotControllerError,
    42: InvalidRequestError,
    43: UnsupportedForMessageFormatError,
    44: PolicyViolationError,
    45: OutOfOrderSequenceNumberError,
    46: DuplicateSequenceNumberError,
    47: InvalidProducerEpochError,
    48: InvalidTxnStateError,
    49: InvalidProducerIdMappingError,
    50: InvalidTransactionTimeoutError,
    51: ConcurrentTransactionsError,
    52: TransactionCoordinatorFencedError,
    53: TransactionalIdAuthorizationFailedError,
    54: SecurityDisabledError,
    55: OperationNotAttemptedError,
    56: KafkaStorageError,
    57: LogDirNotFoundError,
    58: SaslAuthenticationFailedError,
    59: UnknownProducerIdError,
    60: ReassignmentInProgressError,
    61: DelegationTokenAuthDisabledError,
    62: DelegationTokenNotFoundError,
    63: DelegationTokenOwnerMismatchError,
    64: DelegationTokenRequestNotAllowedError,
    65: DelegationTokenAuthorizationFailedError,
    66: DelegationTokenExpiredError,
    67: InvalidPrincipalTypeError,
    68: NonEmptyGroupError,
    69: GroupIdNotFoundError,
    70: FetchSessionIdNotFoundError,
    71: InvalidFetchSessionEpochError,
    72: ListenerNotFoundError,
    73: TopicDeletionDisabledError,
    74: FencedLeaderEpochError,
    75: UnknownLeaderEpochError,
    76: UnsupportedCompressionTypeError,
    77: StaleBrokerEpochError,
    78: OffsetNotAvailableError,
    79: MemberIdRequiredError,
    80: PreferredLeaderNotAvailableError,
    81: GroupMaxSizeReachedError,
    82: FencedInstanceIdError,
    83: EligibleLeadersNotAvailableError,
    84: ElectionNotNeededError,
    85: NoReassignmentInProgressError,
    86: GroupSubscribedToTopicError,
    87: InvalidRecordError,
    88: UnstableOffsetCommitError,
    89: ThrottlingQuotaExceededError,
    90: ProducerFencedError,
    91: ResourceNotFoundError,
    92: DuplicateResourceError,
    93: UnacceptableCredentialError,
    94: InconsistentVoterSetError,
    95: InvalidUpdateVersionError,
    96: FeatureUpdateFailedError,
    97: PrincipalDeserializationFailureError,
    98: SnapshotNotFoundError,
    100: UnknownTopicIdError,
    101: DuplicateBrokerRegistrationError,
    102: BrokerIdNotRegisteredError,
    103: InconsistentTopicIdError,
    104: InconsistentClusterIdError,
    105: TransactionalIdNotFoundError,
    106: FetchSessionTopicIdError,
    107: IneligibleReplicaError,
    108: NewLeaderElectedError,
    109: OffsetMovedToTieredStorageError,
    110: FencedMemberEpochError,
    111: UnreleasedInstanceIdError,
    112: UnsupportedAssignorError,
    113: StaleMemberEpochError,
    114: MismatchedEndpointTypeError,
    115: UnsupportedEndpointTypeError,
    116: UnknownControllerIdError,
    117: UnknownSubscriptionIdError,
    118: TelemetryTooLargeError,
    119: InvalidRegistrationError,
    120: TransactionAbortableError,
    121: InvalidRecordStateError,
    122: ShareSessionNotFoundError,
    123: InvalidShareSessionEpochError,
    124: FencedStateEpochError,
    125: InvalidVoterKeyError,
    126: DuplicateVoterError,
    127: VoterNotFoundError,
    128: InvalidRegularExpressionError,
}
__all__ += [
    "UnknownServerError",
    "OffsetOutOfRangeError",
    "CorruptMessageError",
    "UnknownTopicOrPartitionError",
    "InvalidFetchSizeError",
    "LeaderNotAvailableError",
    "NotLeaderOrFollowerError",
    "RequestTimedOutError",
    "BrokerNotAvailableError",
    "ReplicaNotAvailableError",
    "MessageTooLargeError",
    "StaleControllerEpochError",
    "OffsetMetadataTooLargeError",
    "NetworkError",
    "CoordinatorLoadInProgressError",
    "CoordinatorNotAvailableError",
    "NotCoordinatorError",
    "InvalidTopicError",
    "RecordListTooLargeError",
    "NotEnoughReplicasError",
    "NotEnoughReplicasAfterAppendError",
    "InvalidRequiredAcksError",
    "IllegalGenerationError",
    "InconsistentGroupProtocolError",
    "InvalidGroupIdError",
    "UnknownMemberIdError",
    "InvalidSessionTimeoutError",
    "RebalanceInProgressError",
    "InvalidCommitOffsetSizeError",
    "TopicAuthorizationFailedError",
    "GroupAuthorizationFailedError",
    "ClusterAuthorizationFailedError",
    "InvalidTimestampError",
    "UnsupportedSaslMechanismError",
    "IllegalSaslStateError",
    "UnsupportedVersionError",
    "TopicAlreadyExistsError",
    "InvalidPartitionsError",
    "InvalidReplicationFactorError",
    "InvalidReplicaAssignmentError",
    "InvalidConfigError",
    "NotControllerError",
    "InvalidRequestError",
    "UnsupportedForMessageFormatError",
    "PolicyViolationError",
    "OutOfOrderSequenceNumberError",
    "DuplicateSequenceNumberError",
    "InvalidProducerEpochError",
    "InvalidTxnStateError",
    "InvalidProducerIdMappingError",
    "InvalidTransactionTimeoutError",
    "ConcurrentTransactionsError",
    "TransactionCoordinatorFencedError",
    "TransactionalIdAuthorizationFailedError",
    "SecurityDisabledError",
    "OperationNotAttemptedError",
    "KafkaStorageError",
    "LogDirNotFoundError",
    "SaslAuthenticationFailedError",
    "UnknownProducerIdError",
    "ReassignmentInProgressError",
    "DelegationTokenAuthDisabledError",
    "DelegationTokenNotFoundError",
    "DelegationTokenOwnerMismatchError",
    "DelegationTokenRequestNotAllowedError",
    "DelegationTokenAuthorizationFailedError",
    "DelegationTokenExpiredError",
    "InvalidPrincipalTypeError",
    "NonEmptyGroupError",
    "GroupIdNotFoundError",
    "FetchSessionIdNotFoundError",
    "InvalidFetchSessionEpochError",
    "ListenerNotFoundError",
    "TopicDeletionDisabledError",
    "FencedLeaderEpochError",
    "UnknownLeaderEpochError",
    "UnsupportedCompressionTypeError",
    "StaleBrokerEpochError",
    "OffsetNotAvailableError",
    "MemberIdRequiredError",
    "PreferredLeaderNotAvailableError",
    "GroupMaxSizeReachedError",
    "FencedInstanceIdError",
    "EligibleLeadersNotAvailableError",
    "ElectionNotNeededError",
    "NoReassignmentInProgressError",
    "GroupSubscribedToTopicError",
    "InvalidRecordError",
    "UnstableOffsetCommitError",
    "ThrottlingQuotaExceededError",
    "ProducerFencedError",
    "ResourceNotFoundError",
    "DuplicateResourceError",
    "UnacceptableCredentialError",
    "InconsistentVoterSetError",
    "InvalidUpdateVersionError",
    "FeatureUpdateFailedError",
    "PrincipalDeserializationFailureError",
    "SnapshotNotFoundError",
    "UnknownTopicIdError",
    "DuplicateBrokerRegistrationError",
    "BrokerIdNotRegisteredError",
    "InconsistentTopicIdError",
    "InconsistentClusterIdError",
    "TransactionalIdNotFoundError",
    "FetchSessionTopicIdError",
    "IneligibleReplicaError",
    "NewLeaderElectedError",
    "OffsetMovedToTieredStorageError",
    "FencedMemberEpochError",
    "UnreleasedInstanceIdError",
    "UnsupportedAssignorError",
    "StaleMemberEpochError",
    "MismatchedEndpointTypeError",
    "UnsupportedEndpointTypeError",
    "UnknownControllerIdError",
    "UnknownSubscriptionIdError",
    "TelemetryTooLargeError",
    "InvalidRegistrationError",
    "TransactionAbortableError",
    "InvalidRecordStateError",
    "ShareSessionNotFoundError",
    "InvalidShareSessionEpochError",
    "FencedStateEpochError",
    "InvalidVoterKeyError",
    "DuplicateVoterError",
    "VoterNotFoundError",
    "InvalidRegularExpressionError",
]
# END GENERATED BROKER ERRORS


class UnknownBrokerError(BrokerError):
    """A code this version of kengine does not know. The number is kept in ``code``."""

    def __init__(self, code: int, message: str | None = None, **context: Any) -> None:
        # instance values shadow the class defaults
        self.code = code  # type: ignore[misc]
        self.name = f"UNKNOWN_CODE_{code}"  # type: ignore[misc]
        super().__init__(message or f"unknown broker error code {code}", **context)


def error_for_code(code: int, message: str | None = None, **context: Any) -> BrokerError:
    """The typed error for a non-zero broker error code."""
    cls = BROKER_ERRORS.get(code)
    if cls is None:
        return UnknownBrokerError(code, message, **context)
    return cls(message, **context)


class ConfigError(KafkaError, ValueError):
    """A setting is unknown, has a bad value, or conflicts with another setting."""

    def __init__(self, key: str, value: Any, allowed: str, *, message: str | None = None) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(message or f"invalid configuration {key}={value!r}: {allowed}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_config_error, (self.key, self.value, self.allowed, str(self)))


def _config_error(key: str, value: Any, allowed: str, message: str) -> ConfigError:
    return ConfigError(key, value, allowed, message=message)


class SerializationError(KafkaError, TypeError):
    """A key, value or header could not be turned into bytes. Nothing was sent for that record.

    Schema serializers (``kengine.schema_registry``) also say which ``field`` ("key" or
    "value"), which registry ``subject`` and the ``reason`` (the value that does not fit its
    schema, or the registry's answer); those are None for other serializers."""

    def __init__(self, message: str, *, field: str | None = None, subject: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.field, self.subject, self.reason = field, subject, reason


class SchemaRegistryError(KafkaError):
    """A Schema Registry refused a request or could not be reached.

    ``http_status`` is the HTTP status (None when no answer came: the registry was unreachable
    until the deadline), ``error_code`` the registry's own code when it sent one (Confluent's
    numbers, such as 40401 subject not found, 40403 schema not found, 409 incompatible; other
    registries may differ: test ``http_status``), and ``retriable`` whether kengine retried it
    (no answer, HTTP 5xx or 429)."""

    def __init__(self, message: str, *, http_status: int | None = None,
                 error_code: int | None = None, retriable: bool = False) -> None:
        super().__init__(message)
        self.http_status, self.error_code = http_status, error_code
        self.retriable = retriable  # type: ignore[misc]


class RecordTooLargeError(MessageTooLargeError):  # noqa: F821 (generated above)
    """A record is larger than ``max.request.size`` (or ``buffer.memory``); it failed before
    leaving the client."""


class CorruptRecordError(KafkaError, ValueError):
    """Bytes that should hold a RecordBatch are truncated or corrupt (bad magic, length, CRC or
    compressed payload). The message says which and at what offset."""


class ProtocolError(KafkaError):
    """A broker sent a response that does not decode (truncated, malformed, or not the one
    that was asked for). The connection is closed and the request retried."""

    retriable = True


class IllegalStateError(KafkaError, RuntimeError):
    """A call that is not allowed in the producer's current state (for example
    ``commit_transaction()`` without ``begin_transaction()``)."""


class ProducerClosedError(IllegalStateError):
    """The producer was closed; it accepts no more records."""


class ProducerForkedError(IllegalStateError):
    """A producer (or one of its futures) used in a process made by ``fork()`` from the one that
    created it: ``multiprocessing`` with the fork start method, Gunicorn or Celery pre-fork
    workers. Its sender thread and connections stayed in the parent, so in the child nothing
    would ever deliver its records: every call there raises this at once instead of waiting
    forever. The parent's producer keeps working. What to do: create the producer after the
    fork, in the process that uses it (Gunicorn's ``post_fork``, Celery's
    ``worker_process_init``, a ``multiprocessing.Pool`` initializer). ``owner_pid`` is the
    process that created the producer, ``pid`` the one that called."""

    def __init__(self, call: str, owner_pid: int, pid: int) -> None:
        self.call, self.owner_pid, self.pid = call, owner_pid, pid
        super().__init__(
            f"{call} in process {pid}, but the producer was created in process {owner_pid} and "
            f"cannot be used after fork(): its sender thread and connections stayed in that "
            f"process, so nothing here would ever be delivered. Create the producer after the "
            f"fork, in the process that uses it")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.call, self.owner_pid, self.pid))


class PartitionerError(KafkaError):
    """A partitioner raised or returned a partition outside ``[0, partition_count)``. Only the
    record being sent fails; the producer keeps running."""


class RecordRejectedError(KafkaError, ValueError):
    """An interceptor refused the record (``mask_fields`` on a value it cannot mask, for
    one): it was not sent. Unlike any other exception of an interceptor, which is logged
    and skipped (Java's rule), this one fails the record: a governance rule that cannot be
    applied must not let the record out as it was. ``interceptor`` names the one that
    refused it."""

    def __init__(self, message: str, *, interceptor: str | None = None) -> None:
        super().__init__(message)
        self.interceptor = interceptor


class InvalidPartitionError(KafkaError, ValueError):
    """An explicit partition that the topic does not have (checked against fresh metadata)."""


class GroupMetadataError(KafkaError, TypeError):
    """``send_offsets_to_transaction()`` was given consumer group metadata it cannot read (an
    unknown object, librdkafka bytes of another version, a consumer outside any group). Nothing
    was sent; the transaction is still open. The message says what to pass instead."""


class InvalidOffsetError(KafkaError, ValueError):
    """``send_offsets_to_transaction()`` was given an offset that cannot be committed (negative,
    not an int, a partition with a consumer error). The message names the partition. Nothing
    was sent; the transaction is still open."""


class RecordPurgedError(KafkaError):
    """``purge()`` dropped the record before it was sent: it was not written
    (``maybe_written`` is False), and resending it cannot duplicate it."""


class TransactionAbortedError(KafkaError):
    """The record was part of a transaction that was aborted before it was sent."""


class TransactionNotRecoverableError(KafkaError):
    """A transactional producer met an error it could only recover from with a new producer
    epoch (KIP-360), and its transaction coordinator cannot give it one: the broker is older
    than Kafka 2.5 (it offers InitProducerId up to v2, ``init_producer_id_max_version``).
    Asking that broker for a new epoch without naming the current one could fence a newer
    producer with the same ``transactional.id``, so, as Java's client does, the producer stops
    instead: it is fatal, only ``close()`` is left. The open transaction is not committed (the
    coordinator aborts it when it times out or when the next producer with this
    ``transactional.id`` calls ``init_transactions()``); transactions committed before are
    untouched. ``__cause__`` is the error that needed the new epoch. What to do: create a new
    producer and call ``init_transactions()`` (it resumes safely), or upgrade the brokers to
    Kafka 2.5 or later, where the producer aborts and carries on by itself."""

    def __init__(self, message: str, init_producer_id_max_version: int | None = None) -> None:
        self.init_producer_id_max_version = init_producer_id_max_version
        super().__init__(message)


class IngestError(KafkaError):
    """A distributed ingest (``kengine.dask.to_kafka()``) did not write every row. Raised by a
    worker's task for an error that stops its partition (Dask may run the task again), and
    by ``to_kafka()`` when partitions still had rows not written: ``result`` is then the
    ``IngestResult`` with every partition's outcome (which rows, and why), else None."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.result))


class BufferFullError(KafkaTimeoutError):
    """``buffer.memory`` is used up and the call may not block to wait for it. The asyncio
    producer (``kengine.aio``) asks for this instead of a blocking wait, waits on its event
    loop and tries again; it raises ``KafkaTimeoutError`` only after ``max.block.ms``. Nothing
    of the refused record (or, for ``send_many()``, of the records listed with it) was sent.
    ``need_bytes``: the bytes the record's batch needs."""

    def __init__(self, message: str, need_bytes: int = 0) -> None:
        self.need_bytes = need_bytes
        super().__init__(message)


class DeliveryTimeoutError(KafkaTimeoutError):
    """Records that were not acknowledged within ``delivery.timeout.ms``. When retries were
    spent on a broker error, the error raised is also an instance of that error's class
    (``except NotEnoughReplicasError`` catches a delivery that timed out retrying it)."""


_timeout_classes: dict[type[KafkaError], type[DeliveryTimeoutError]] = {}


def delivery_timeout(message: str, last_error: KafkaError | None) -> DeliveryTimeoutError:
    """The error for records whose delivery.timeout.ms passed, typed after the last error."""
    if not isinstance(last_error, BrokerError):
        return DeliveryTimeoutError(message)
    base = type(last_error)
    cls = _timeout_classes.get(base)
    if cls is None:
        cls = _timeout_classes[base] = type(
            f"{base.__name__}DeliveryTimeout", (DeliveryTimeoutError, base),
            {"__doc__": f"delivery.timeout.ms passed while retrying {base.name}",
             "__module__": PUBLIC_MODULE})
    err = cls.__new__(cls)
    BrokerError.__init__(err, message, **last_error.context)  # type: ignore[arg-type]
    return err


# Set last, on every class above and the generated ones.
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, KafkaError):
        _cls.__module__ = PUBLIC_MODULE
del _cls
