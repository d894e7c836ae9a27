/**
 * @tollgate/sdk — what apps embed. For now: the record shape apps send to `POST /v1/events` and the
 * id generator that makes those sends idempotent. Client wrappers and the exporter come next (issue 5).
 */
export { type CallRecordInput, SCHEMA_VERSION, uuidv7 } from "@tollgate/core";
