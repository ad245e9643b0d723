"""MSQ faults: Druid's errorCode, message templates, JSON property order/inclusion, and the status errorMsg.

Expected strings are Druid's templates (multi-stage-query/.../msq/indexing/error/*Fault.java) filled by hand
with the sample values; JSON objects are compared as ordered item lists, since Jackson's property order is part
of the wire format.
"""
from __future__ import annotations

import inspect
import json
import pickle

import pytest

from msqcore import errors
from msqcore.errors import (
    BroadcastTablesTooLarge, Canceled, CannotParseExternalData, ColumnNameRestricted, ColumnTypeNotSupported,
    DruidExceptionFault, DurableStorageConfiguration, Fault, InsertCannotAllocateSegment, InsertCannotBeEmpty,
    InsertLockPreempted, InsertTimeNull, InsertTimeOutOfBounds, InvalidField, InvalidNullByte, NotEnoughMemory,
    NotEnoughTemporaryStorage, QueryNotSupported, QueryRuntime, QueryRuntimeError, RowTooLarge, TaskStartTimeout,
    TooManyAttemptsForJob, TooManyAttemptsForWorker, TooManyBuckets, TooManyClusteredByColumns, TooManyColumns,
    TooManyInputFiles, TooManyPartitions, TooManyRowsInAWindow, TooManyRowsWithSameKey, TooManySegmentsInTimeChunk,
    TooManyWarnings, TooManyWorkers, UnknownError, WorkerFailed, WorkerRpcFailed, interval_granularity_name,
    truncate_error_msg,
)

DAY1 = "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"
DAY2 = "2024-01-02T00:00:00.000Z/2024-01-03T00:00:00.000Z"
JAN = "2024-01-01T00:00:00.000Z/2024-02-01T00:00:00.000Z"

# (id, fault, expected JSON in Druid's property order, expected errorMessage or None)
CASES = [
    ("BroadcastTablesTooLarge",
     BroadcastTablesTooLarge(maxBroadcastTablesSize=104857600),
     {"errorCode": "BroadcastTablesTooLarge", "maxBroadcastTablesSize": 104857600},
     "Size of broadcast tables in JOIN exceeds reserved memory limit (memory reserved for broadcast tables = "
     "[104,857,600] bytes). Increase available memory, or set [sqlJoinAlgorithm: sortMerge] in query context to "
     "use a shuffle-based join."),
    ("BroadcastTablesTooLarge-broadcast",
     BroadcastTablesTooLarge(maxBroadcastTablesSize=1000, configuredJoinAlgorithm="broadcast"),
     {"errorCode": "BroadcastTablesTooLarge", "maxBroadcastTablesSize": 1000, "configuredJoinAlgorithm": "broadcast"},
     "Size of broadcast tables in JOIN exceeds reserved memory limit (memory reserved for broadcast tables = "
     "[1,000] bytes). Increase available memory, or set [sqlJoinAlgorithm: sortMerge] in query context to "
     "use a shuffle-based join."),
    ("BroadcastTablesTooLarge-sortMerge",
     BroadcastTablesTooLarge(maxBroadcastTablesSize=1000, configuredJoinAlgorithm="sortMerge"),
     {"errorCode": "BroadcastTablesTooLarge", "maxBroadcastTablesSize": 1000, "configuredJoinAlgorithm": "sortMerge"},
     "Size of broadcast tables in JOIN exceeds reserved memory limit (memory reserved for broadcast tables = "
     "[1,000] bytes). Try increasing available memory. This query is using broadcast JOIN even though "
     "[sqlJoinAlgorithm: sortMerge] is set in query context, because the configured join algorithm does not "
     "support the join condition."),
    ("Canceled-TASK_SHUTDOWN", Canceled(reason="TASK_SHUTDOWN"),
     {"errorCode": "Canceled", "reason": "TASK_SHUTDOWN"}, "Query canceled due to [Task shutdown]."),
    ("Canceled-USER_REQUEST", Canceled(reason="USER_REQUEST"),
     {"errorCode": "Canceled", "reason": "USER_REQUEST"}, "Query canceled due to [User request]."),
    ("Canceled-QUERY_TIMEOUT", Canceled(reason="QUERY_TIMEOUT"),
     {"errorCode": "Canceled", "reason": "QUERY_TIMEOUT"}, "Query canceled due to [Query timeout]."),
    ("Canceled-UNKNOWN", Canceled(reason="UNKNOWN"),
     {"errorCode": "Canceled", "reason": "UNKNOWN"}, "Query canceled due to [Unknown]."),
    ("Canceled-null", Canceled(),
     {"errorCode": "Canceled", "reason": "UNKNOWN"}, "Query canceled due to [Unknown]."),
    ("Canceled-newer-reason", Canceled(reason="SOMETHING_NEWER"),
     {"errorCode": "Canceled", "reason": "UNKNOWN"}, "Query canceled due to [Unknown]."),
    ("CannotParseExternalData",
     CannotParseExternalData("Unable to parse row [x] (Path: file:/d/a.json, Record: 1, Line: 1)"),
     {"errorCode": "CannotParseExternalData"},
     "Unable to parse row [x] (Path: file:/d/a.json, Record: 1, Line: 1)"),
    ("ColumnNameRestricted", ColumnNameRestricted(columnName="__bucket"),
     {"errorCode": "ColumnNameRestricted", "columnName": "__bucket"},
     "[__bucket] column name is reserved for MSQ's internal purpose. Please retry the query after renaming the "
     "column."),
    ("ColumnTypeNotSupported", ColumnTypeNotSupported(columnName="obj", columnType="COMPLEX<json>"),
     {"errorCode": "ColumnTypeNotSupported", "columnName": "obj", "columnType": "COMPLEX<json>"},
     "Cannot handle column [obj] with type [COMPLEX<json>]"),
    ("ColumnTypeNotSupported-unknown", ColumnTypeNotSupported(columnName="obj"),
     {"errorCode": "ColumnTypeNotSupported", "columnName": "obj"},
     "Cannot handle column [obj] with unknown type"),
    ("DurableStorageConfiguration", DurableStorageConfiguration(message="java.lang.RuntimeException: no connector"),
     {"errorCode": "DurableStorageConfiguration", "message": "java.lang.RuntimeException: no connector"},
     "Durable storage mode can only be enabled when druid.msq.intermediate.storage.enable is set to true and the "
     "connector is configured correctly. Check the documentation on how to enable durable storage mode. If you "
     "want to still query without durable storage mode, set durableShuffleStorage to false in the query context. "
     "Got error java.lang.RuntimeException: no connector"),
    ("DurableStorageConfiguration-null", DurableStorageConfiguration(),
     {"errorCode": "DurableStorageConfiguration", "message": None},
     "Durable storage mode can only be enabled when druid.msq.intermediate.storage.enable is set to true and the "
     "connector is configured correctly. Check the documentation on how to enable durable storage mode. If you "
     "want to still query without durable storage mode, set durableShuffleStorage to false in the query context. "
     "Got error null"),
    ("InsertCannotAllocateSegment", InsertCannotAllocateSegment(dataSource="wiki", interval=DAY1),
     {"errorCode": "InsertCannotAllocateSegment", "dataSource": "wiki", "interval": DAY1, "allocatedInterval": None},
     f"Cannot allocate segment for dataSource [wiki], interval [{DAY1}]. This can happen if the prior ingestion "
     "uses non-extendable shard specs or if the partitioned by granularity is different from the granularity of "
     "the pre-existing segments. Check the granularities of the pre-existing segments or re-run the ingestion "
     "with REPLACE to overwrite over the existing data"),
    ("InsertCannotAllocateSegment-allocated",
     InsertCannotAllocateSegment(dataSource="wiki", interval=DAY1, allocatedInterval=JAN),
     {"errorCode": "InsertCannotAllocateSegment", "dataSource": "wiki", "interval": DAY1, "allocatedInterval": JAN},
     f"Requested segment for dataSource [wiki], interval [{DAY1}], but got [{JAN}] interval instead. This happens "
     "when an overlapping segment is already present with a coarser granularity for the requested interval. "
     "Either set the partition granularity for the INSERT to [MONTH] to append to existing data or use REPLACE "
     "to overwrite over the pre-existing segment"),
    ("InsertCannotBeEmpty", InsertCannotBeEmpty(dataSource="wiki"),
     {"errorCode": "InsertCannotBeEmpty", "dataSource": "wiki"},
     "No rows to insert for dataSource[wiki]. Set failOnEmptyInsert : false in the query context to allow empty "
     "inserts."),
    ("InsertLockPreempted", InsertLockPreempted(),
     {"errorCode": "InsertLockPreempted"},
     "Lock preempted while trying to ingest the data. This can occur if there are higher priority tasks, such as "
     "real-time ingestion, running on the same time chunks."),
    ("InsertTimeNull", InsertTimeNull(),
     {"errorCode": "InsertTimeNull"},
     "Null timestamp (__time) encountered during INSERT or REPLACE."),
    ("InsertTimeOutOfBounds", InsertTimeOutOfBounds(interval=DAY2, intervalBounds=[DAY1]),
     {"errorCode": "InsertTimeOutOfBounds", "interval": DAY2, "intervalBounds": [DAY1]},
     f"Inserted data contains time chunk[{DAY2}] outside of bounds specified by OVERWRITE WHERE[[{DAY1}]]. If you "
     "want to include this data, expand your OVERWRITE WHERE. If you do not want to include this data, use "
     "SELECT ... WHERE to filter it from your inserted data."),
    ("InsertTimeOutOfBounds-two-bounds", InsertTimeOutOfBounds(interval=JAN, intervalBounds=[DAY1, DAY2]),
     {"errorCode": "InsertTimeOutOfBounds", "interval": JAN, "intervalBounds": [DAY1, DAY2]},
     f"Inserted data contains time chunk[{JAN}] outside of bounds specified by OVERWRITE WHERE[[{DAY1}, {DAY2}]]. "
     "If you want to include this data, expand your OVERWRITE WHERE. If you do not want to include this data, "
     "use SELECT ... WHERE to filter it from your inserted data."),
    ("InvalidField",
     InvalidField(source="LocalInputSource{baseDir=/d}", column="dim", rowNumber=3, errorMsg="bad value",
                  logMsg="Unable to add the row to the frame. Type conversion might be required."),
     {"errorCode": "InvalidField", "source": "LocalInputSource{baseDir=/d}", "column": "dim", "rowNumber": 3,
      "errorMsg": "bad value", "logMsg": "Unable to add the row to the frame. Type conversion might be required."},
     "Unable to add the row to the frame. Type conversion might be required."),
    ("InvalidField-empty", InvalidField(), {"errorCode": "InvalidField"}, None),
    ("InvalidNullByte",
     InvalidNullByte(source="inline input source", rowNumber=2, column="desc", value="a\x00b", position=2),
     {"errorCode": "InvalidNullByte", "source": "inline input source", "rowNumber": 2, "column": "desc",
      "value": "a\x00b", "position": 2},
     "Invalid null byte at source[inline input source], rowNumber[2], column[desc], value[a\x00b], position[2]. "
     "Consider sanitizing the input string column using \"REPLACE(\"desc\", U&'\\0000', '') AS desc\" or setting "
     "'removeNullBytes' to true in the query context."),
    ("InvalidNullByte-nulls", InvalidNullByte(),
     {"errorCode": "InvalidNullByte"},
     "Invalid null byte at source[null], rowNumber[null], column[null], value[null], position[null]. "
     "Consider sanitizing the input string column using \"REPLACE(\"null\", U&'\\0000', '') AS null\" or setting "
     "'removeNullBytes' to true in the query context."),
    ("NotEnoughMemory",
     NotEnoughMemory(suggestedServerMemory=2_000_000_000, serverMemory=1_000_000_000, usableMemory=750_000_000,
                     serverWorkers=2, serverThreads=4, inputWorkers=10, maxConcurrentStages=2),
     {"errorCode": "NotEnoughMemory", "suggestedServerMemory": 2000000000, "serverMemory": 1000000000,
      "usableMemory": 750000000, "serverWorkers": 2, "serverThreads": 4, "inputWorkers": 10,
      "maxConcurrentStages": 2},
     "Not enough memory. Minimum bytes[2,000,000,000] is needed for the current configuration. "
     "(total bytes[1,000,000,000]; usable bytes[750,000,000]; input workers[10]; concurrent stages[2]; "
     "server worker capacity[2]; server processing threads[4]). Increase JVM memory with the -Xmx option, "
     "or reduce maxNumTasks for this query, or reduce maxConcurrentStages for this query, or reduce worker "
     "capacity on this server, or reduce processing threads on this server"),
    ("NotEnoughMemory-defaults-omitted",
     NotEnoughMemory(serverMemory=1234, usableMemory=1000, serverWorkers=1, serverThreads=1),
     {"errorCode": "NotEnoughMemory", "serverMemory": 1234, "usableMemory": 1000, "serverWorkers": 1,
      "serverThreads": 1},
     "Not enough memory. (total bytes[1,234]; usable bytes[1,000]; input workers[0]; concurrent stages[0]; "
     "server worker capacity[1]; server processing threads[1]). Increase JVM memory with the -Xmx option"),
    ("NotEnoughTemporaryStorageFault",
     NotEnoughTemporaryStorage(suggestedMinimumStorage=1073741824, configuredTemporaryStorage=1000000),
     {"errorCode": "NotEnoughTemporaryStorageFault", "suggestedMinimumStorage": 1073741824,
      "configuredTemporaryStorage": 1000000},
     "Not enough temporary storage space for intermediate files. Requires at least 1,073,741,824 bytes. "
     "(configured = 1,000,000 bytes). Increase the limit by increasing tmpStorageBytesPerTask or disable "
     "durable storage by setting the context parameter durableShuffleStorage as false."),
    ("QueryNotSupported", QueryNotSupported(), {"errorCode": "QueryNotSupported"}, None),
    ("QueryRuntimeError", QueryRuntime("Query failed: boom"),
     {"errorCode": "QueryRuntimeError", "baseErrorMessage": None}, "Query failed: boom"),
    ("QueryRuntimeError-base", QueryRuntime("Query failed: boom", baseErrorMessage="boom"),
     {"errorCode": "QueryRuntimeError", "baseErrorMessage": "boom"}, "Query failed: boom"),
    ("RowTooLarge", RowTooLarge(maxFrameSize=1000000),
     {"errorCode": "RowTooLarge", "maxFrameSize": 1000000},
     "Encountered row that cannot fit in a single frame (max frame size = 1,000,000). Reduce your row size or "
     "increase the context parameter[maxFrameSize]."),
    ("TaskStartTimeout", TaskStartTimeout(pendingTasks=3, totalTasks=5, timeout=600000),
     {"errorCode": "TaskStartTimeout", "pendingTasks": 3, "totalTasks": 5, "timeout": 600000},
     "Unable to launch [3] workers out of the total [5] worker tasks within [600] seconds of the last successful "
     "worker launch. There might be insufficient available slots to start all worker tasks simultaneously. Try "
     "lowering 'maxNumTasks' in your query context to a number that fits within your available task capacity, "
     "or try increasing capacity."),
    ("TaskStartTimeout-grouped-seconds", TaskStartTimeout(pendingTasks=1, totalTasks=1, timeout=1234567),
     {"errorCode": "TaskStartTimeout", "pendingTasks": 1, "totalTasks": 1, "timeout": 1234567},
     "Unable to launch [1] workers out of the total [1] worker tasks within [1,234] seconds of the last successful "
     "worker launch. There might be insufficient available slots to start all worker tasks simultaneously. Try "
     "lowering 'maxNumTasks' in your query context to a number that fits within your available task capacity, "
     "or try increasing capacity."),
    ("TooManyAttemptsForJob",
     TooManyAttemptsForJob(maxRelaunchCount=100, currentRelaunchCount=101, taskId="query-q-worker1_3",
                           rootErrorMessage="WorkerFailed: Worker[query-q-worker1_3] failed"),
     {"errorCode": "TooManyAttemptsForJob", "maxRelaunchCount": 100, "currentRelaunchCount": 101,
      "taskId": "query-q-worker1_3", "rootErrorMessage": "WorkerFailed: Worker[query-q-worker1_3] failed"},
     "Total relaunch count across all workers 101 exceeded max relaunch limit 100 . Latest task[query-q-worker1_3] "
     "failure reason: WorkerFailed: Worker[query-q-worker1_3] failed"),
    ("TooManyAttemptsForWorker",
     TooManyAttemptsForWorker(maxPerWorkerRelaunchCount=2, taskId="query-q-worker0_2", workerNumber=0,
                              rootErrorMessage="WorkerRpcFailed: RPC to worker[query-q-worker0_2] failed"),
     {"errorCode": "TooManyAttemptsForWorker", "maxPerWorkerRelaunchCount": 2, "taskId": "query-q-worker0_2",
      "workerNumber": 0, "rootErrorMessage": "WorkerRpcFailed: RPC to worker[query-q-worker0_2] failed"},
     "Worker[0] exceeded max relaunch count of 2 for task[query-q-worker0_2]. Latest failure reason: "
     "WorkerRpcFailed: RPC to worker[query-q-worker0_2] failed."),
    ("TooManyBuckets", TooManyBuckets(maxBuckets=5000),
     {"errorCode": "TooManyBuckets", "maxBuckets": 5000},
     "Too many partition buckets (max = 5,000); try breaking your query up into smaller queries or using a wider "
     "PARTITIONED BY"),
    ("TooManyClusteredByColumns", TooManyClusteredByColumns(numColumns=1501, maxColumns=1500, stage=0),
     {"errorCode": "TooManyClusteredByColumns", "numColumns": 1501, "maxColumns": 1500, "stage": 0},
     "Too many cluster by columns present in stage [0] (requested = 1501, max = 1500)"),
    ("TooManyColumns", TooManyColumns(numColumns=2001, maxColumns=2000),
     {"errorCode": "TooManyColumns", "numColumns": 2001, "maxColumns": 2000},
     "Too many output columns (requested = 2001, max = 2000)"),
    ("TooManyInputFiles", TooManyInputFiles(numInputFiles=10001, maxInputFiles=10000, minNumWorkers=2),
     {"errorCode": "TooManyInputFiles", "numInputFiles": 10001, "maxInputFiles": 10000, "minNumWorkers": 2},
     "Too many input files/segments [10001] encountered. Maximum input files/segments per worker is set to "
     "[10000]. Try breaking your query up into smaller queries, or increasing the number of workers to at least "
     "[2] by setting maxNumTasks in your query context"),
    ("TooManyPartitions", TooManyPartitions(maxPartitions=25000),
     {"errorCode": "TooManyPartitions", "maxPartitions": 25000},
     "Too many partitions (max = 25000). Try increasing the limit using the maxPartitions query context "
     "parameter, breaking your query up into smaller queries, or using a larger target size."),
    ("TooManyRowsInAWindow", TooManyRowsInAWindow(numRows=100001, maxRows=100000),
     {"errorCode": "TooManyRowsInAWindow", "numRows": 100001, "maxRows": 100000},
     "Too many rows in a window (requested = 100001, max = 100000).  Try creating a window with a higher "
     "cardinality column or change the query shape. Or you can change the max using query context param "
     "maxRowsMaterializedInWindow . Use it carefully as a higher value can lead to OutOfMemory errors. "),
    ("TooManyRowsWithSameKey",
     TooManyRowsWithSameKey(key=["abc", 1, 2.5, None], numBytes=10485761, maxBytes=10485760),
     {"errorCode": "TooManyRowsWithSameKey", "key": ["abc", 1, 2.5, None], "numBytes": 10485761,
      "maxBytes": 10485760},
     "Too many rows with the same key[[abc, 1, 2.5, null]] on both sides of sort-merge join (bytes "
     "buffered[10,485,761], limit[10,485,760]). Try adjusting your query such that there are fewer rows with "
     "this key on at least one side of the join."),
    ("TooManySegmentsInTimeChunk",
     TooManySegmentsInTimeChunk(timeChunk="2024-01-01T00:00:00.000Z", numSegments=5000, maxNumSegments=100,
                                segmentGranularity="DAY"),
     {"errorCode": "TooManySegmentsInTimeChunk", "timeChunk": "2024-01-01T00:00:00.000Z", "numSegments": 5000,
      "maxNumSegments": 100, "segmentGranularity": "DAY"},
     "Too many segments requested to be generated in time chunk[2024-01-01T00:00:00.000Z] with granularity[DAY] "
     "(requested = [5,000], maximum = [100]). Please try breaking up your query or change the maximum using the "
     "query context parameter[maxNumSegments]."),
    ("TooManySegmentsInTimeChunk-all",
     TooManySegmentsInTimeChunk(timeChunk="-146136543-09-08T08:23:32.096Z", numSegments=3, maxNumSegments=2,
                                segmentGranularity={"type": "all"}),
     {"errorCode": "TooManySegmentsInTimeChunk", "timeChunk": "-146136543-09-08T08:23:32.096Z", "numSegments": 3,
      "maxNumSegments": 2, "segmentGranularity": {"type": "all"}},
     "Too many segments requested to be generated in time chunk[-146136543-09-08T08:23:32.096Z] with "
     "granularity[ALL] (requested = [3], maximum = [2]). Please try breaking up your query or change the maximum "
     "using the query context parameter[maxNumSegments]."),
    ("TooManySegmentsInTimeChunk-period",
     TooManySegmentsInTimeChunk(timeChunk="2024-01-01T00:00:00.000Z", numSegments=3, maxNumSegments=2,
                                segmentGranularity={"type": "period", "period": "P2D", "timeZone": "UTC",
                                                    "origin": None}),
     {"errorCode": "TooManySegmentsInTimeChunk", "timeChunk": "2024-01-01T00:00:00.000Z", "numSegments": 3,
      "maxNumSegments": 2,
      "segmentGranularity": {"type": "period", "period": "P2D", "timeZone": "UTC", "origin": None}},
     "Too many segments requested to be generated in time chunk[2024-01-01T00:00:00.000Z] with "
     "granularity[{type=period, period=P2D, timeZone=UTC, origin=null}] (requested = [3], maximum = [2]). "
     "Please try breaking up your query or change the maximum using the query context parameter[maxNumSegments]."),
    ("TooManyWarnings", TooManyWarnings(maxWarnings=2, rootErrorCode="CannotParseExternalData"),
     {"errorCode": "TooManyWarnings", "maxWarnings": 2, "rootErrorCode": "CannotParseExternalData"},
     "Too many warnings of type CannotParseExternalData generated (max = 2)"),
    ("TooManyWorkers", TooManyWorkers(workers=1001, maxWorkers=1000),
     {"errorCode": "TooManyWorkers", "workers": 1001, "maxWorkers": 1000},
     "Too many workers (current = 1001; max = 1000)"),
    ("UnknownError", UnknownError("java.io.IOException: No space left on device"),
     {"errorCode": "UnknownError", "message": "java.io.IOException: No space left on device"},
     "java.io.IOException: No space left on device"),
    ("UnknownError-message-kw", UnknownError(message="Query failed"),
     {"errorCode": "UnknownError", "message": "Query failed"}, "Query failed"),
    ("UnknownError-null", UnknownError(), {"errorCode": "UnknownError"}, None),
    ("WorkerFailed", WorkerFailed(workerTaskId="query-q-worker0_0", errorMsg="java.lang.OutOfMemoryError"),
     {"errorCode": "WorkerFailed", "workerTaskId": "query-q-worker0_0", "errorMsg": "java.lang.OutOfMemoryError"},
     "Worker[query-q-worker0_0] failed: java.lang.OutOfMemoryError"),
    ("WorkerFailed-no-errorMsg", WorkerFailed(workerTaskId="query-q-worker0_0"),
     {"errorCode": "WorkerFailed", "workerTaskId": "query-q-worker0_0"},
     "Worker[query-q-worker0_0] failed"),
    ("WorkerRpcFailed", WorkerRpcFailed(workerTaskId="query-q-worker1_0", errorMsg="Connection refused"),
     {"errorCode": "WorkerRpcFailed", "workerTaskId": "query-q-worker1_0", "errorMsg": "Connection refused"},
     "RPC to worker[query-q-worker1_0] failed: Connection refused"),
    ("WorkerRpcFailed-no-errorMsg", WorkerRpcFailed(workerTaskId="query-q-worker1_0"),
     {"errorCode": "WorkerRpcFailed", "workerTaskId": "query-q-worker1_0"},
     "RPC to worker[query-q-worker1_0] failed"),
    ("DruidException",
     DruidExceptionFault("Column [x] not found", druidErrorCode="invalidInput", persona="USER",
                         category="INVALID_INPUT"),
     {"errorCode": "DruidException", "druidErrorCode": "invalidInput", "persona": "USER",
      "category": "INVALID_INPUT"},
     "Column [x] not found"),
    ("DruidException-context",
     DruidExceptionFault("bad", druidErrorCode="general", persona="OPERATOR", category="RUNTIME_FAILURE",
                         context={"k": "v"}),
     {"errorCode": "DruidException", "druidErrorCode": "general", "persona": "OPERATOR",
      "category": "RUNTIME_FAILURE", "context": {"k": "v"}},
     "bad"),
]

# Where errorMessage sits when it is itself a creator property (CannotParseExternalData, QueryRuntimeFault,
# DruidExceptionFault); everywhere else it is written last.
MESSAGE_POSITION = {"CannotParseExternalData": 1, "QueryRuntimeError": 1, "DruidException": 4}


def _expected_json(expected: dict, message: str | None) -> dict:
    items = list(expected.items())
    if message is not None:
        items.insert(MESSAGE_POSITION.get(expected["errorCode"], len(items)), ("errorMessage", message))
    return dict(items)


@pytest.mark.parametrize("fault,expected,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_json_and_error_msg(fault, expected, message):
    want = _expected_json(expected, message)
    assert list(fault.to_json().items()) == list(want.items())
    code = expected["errorCode"]
    assert fault.code == code
    assert fault.message == message
    assert fault.error_msg == (f"{code}: {message}" if message else code)
    assert str(fault) == fault.error_msg


@pytest.mark.parametrize("fault", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_from_json_round_trip(fault):
    wire = json.loads(json.dumps(fault.to_json()))
    again = Fault.from_json(wire)
    assert type(again) is type(fault)
    assert list(again.to_json().items()) == list(fault.to_json().items())
    assert again.error_msg == fault.error_msg
    assert again == fault
    unpickled = pickle.loads(pickle.dumps(fault))
    assert type(unpickled) is type(fault) and unpickled.to_json() == fault.to_json()


def test_registry_covers_every_fault():
    codes = {
        "BroadcastTablesTooLarge", "Canceled", "CannotParseExternalData", "ColumnNameRestricted",
        "ColumnTypeNotSupported", "DurableStorageConfiguration", "InsertCannotAllocateSegment",
        "InsertCannotBeEmpty", "InsertLockPreempted", "InsertTimeNull", "InsertTimeOutOfBounds", "InvalidField",
        "InvalidNullByte", "NotEnoughMemory", "NotEnoughTemporaryStorageFault", "QueryNotSupported",
        "QueryRuntimeError", "RowTooLarge", "TaskStartTimeout", "TooManyAttemptsForJob",
        "TooManyAttemptsForWorker", "TooManyBuckets", "TooManyClusteredByColumns", "TooManyColumns",
        "TooManyInputFiles", "TooManyPartitions", "TooManyRowsInAWindow", "TooManyRowsWithSameKey",
        "TooManySegmentsInTimeChunk", "TooManyWarnings", "TooManyWorkers", "UnknownError", "WorkerFailed",
        "WorkerRpcFailed", "DruidException",
    }
    assert set(errors._FAULTS) == codes
    subclasses = {obj for obj in vars(errors).values()
                  if inspect.isclass(obj) and issubclass(obj, Fault) and obj is not Fault}
    assert subclasses == set(errors._FAULTS.values())
    assert {c[1].code for c in CASES} == codes
    assert QueryRuntimeError is QueryRuntime


def test_constructor_keywords_are_druid_property_names():
    assert list(inspect.signature(NotEnoughMemory).parameters) == [
        "error_message", "suggestedServerMemory", "serverMemory", "usableMemory", "serverWorkers",
        "serverThreads", "inputWorkers", "maxConcurrentStages"]
    assert list(inspect.signature(InsertCannotAllocateSegment).parameters) == [
        "error_message", "dataSource", "interval", "allocatedInterval"]
    with pytest.raises(TypeError, match="missing required keyword argument 'maxWarnings'"):
        TooManyWarnings(rootErrorCode="CannotParseExternalData")
    with pytest.raises(TypeError, match="unexpected keyword"):
        TooManyColumns(numColumns=1, maxColumns=2, columns=3)


def test_error_message_overrides_template():
    fault = TooManyBuckets("custom text", maxBuckets=7)
    assert fault.to_json() == {"errorCode": "TooManyBuckets", "maxBuckets": 7, "errorMessage": "custom text"}
    assert fault.error_msg == "TooManyBuckets: custom text"
    assert TooManyBuckets().to_json()["maxBuckets"] == 5000
    assert QueryNotSupported("JOIN is not supported yet").error_msg == "QueryNotSupported: JOIN is not supported yet"


def test_from_json_ignores_unknown_properties_and_keeps_unknown_codes():
    fault = Fault.from_json({"errorCode": "TooManyColumns", "numColumns": 3, "maxColumns": 2, "future": 1,
                             "errorMessage": "Too many output columns (requested = 3, max = 2)"})
    assert isinstance(fault, TooManyColumns)
    assert "future" not in fault.to_json()
    odd = Fault.from_json({"errorCode": "SomeNewFault", "x": 1, "errorMessage": "m"})
    assert type(odd) is Fault and odd.code == "SomeNewFault"
    assert odd.to_json() == {"errorCode": "SomeNewFault", "x": 1, "errorMessage": "m"}
    assert odd.error_msg == "SomeNewFault: m"
    # A reason from a newer Druid reads as UNKNOWN (CancellationReason.fromString).
    assert Fault.from_json({"errorCode": "Canceled", "reason": "NEW"}).to_json()["reason"] == "UNKNOWN"
    # Without errorMessage the template is rebuilt from the fields.
    assert Fault.from_json({"errorCode": "RowTooLarge", "maxFrameSize": 5}).message.startswith(
        "Encountered row that cannot fit in a single frame (max frame size = 5).")


def test_empty_message_gives_bare_code():
    assert UnknownError("").error_msg == "UnknownError"


# --- errorMsg truncation (TaskStatus.truncateErrorMsg, limit 1,024) -------------------------------------

def test_truncation_boundary():
    exact = "x" * 1024
    assert truncate_error_msg(exact) == exact
    over = "a" * 512 + "M" + "z" * 512
    assert truncate_error_msg(over) == "a" * 512 + "...1 characters omitted..." + "z" * 512
    assert truncate_error_msg(None) is None


def test_fault_error_msg_is_truncated_in_the_middle():
    message = "H" * 600 + "m" * 2000 + "T" * 600
    fault = UnknownError(message)
    full = "UnknownError: " + message  # 3,214 chars
    expected = full[:512] + f"...{len(full) - 1024} characters omitted..." + full[-512:]
    assert fault.error_msg == expected
    assert fault.error_msg.startswith("UnknownError: HHH")
    assert "...2190 characters omitted..." in fault.error_msg
    assert fault.error_msg.endswith("T" * 512)
    # The report keeps the whole message.
    assert fault.to_json()["errorMessage"] == message


def test_truncation_counts_utf16_units_like_java():
    # 600 emoji = 1,200 UTF-16 units: over the limit although only 600 code points.
    text = "\U0001F600" * 600
    out = truncate_error_msg(text)
    assert "...176 characters omitted..." in out
    assert out.startswith("\U0001F600" * 256) and out.endswith("\U0001F600" * 256)


# --- granularity names used in messages -----------------------------------------------------------------

@pytest.mark.parametrize("interval,name", [
    (DAY1, "DAY"),
    ("2024-01-01T00:00:00.000Z/2024-01-03T00:00:00.000Z", "DAY"),  # fromPeriod: any day count is DAY
    (JAN, "MONTH"),
    ("2024-01-01T00:00:00.000Z/2024-04-01T00:00:00.000Z", "QUARTER"),
    ("2024-01-01T00:00:00.000Z/2025-01-01T00:00:00.000Z", "YEAR"),
    ("2024-01-01T00:00:00.000Z/2024-01-08T00:00:00.000Z", "WEEK"),
    ("2024-01-01T00:00:00.000Z/2024-01-01T06:00:00.000Z", "SIX_HOUR"),
    ("2024-01-01T00:00:00.000Z/2024-01-01T00:15:00.000Z", "FIFTEEN_MINUTE"),
    ("2024-01-01T00:00:00.000Z/2024-01-01T01:30:00.000Z", "DurationGranularity{duration=5400000, origin=0}"),
    ("2024-01-01T00:00:00.000Z/2024-01-01T02:00:00.000Z", "DurationGranularity{duration=7200000, origin=0}"),
])
def test_interval_granularity_name(interval, name):
    assert interval_granularity_name(interval) == name


def test_segment_granularity_display_for_non_utc_period():
    fault = TooManySegmentsInTimeChunk(
        timeChunk="2024-01-01T08:00:00.000Z", numSegments=3, maxNumSegments=2,
        segmentGranularity={"type": "period", "period": "P1D", "timeZone": "America/Los_Angeles", "origin": None})
    assert ("granularity[{type=period, period=P1D, timeZone=America/Los_Angeles, origin=null}]"
            in fault.message)
