#!/usr/bin/env python3
"""Writes tests/it/contract/schemas/*.json from a checkout of Genesys's
Python SDK (platform-client-sdk-python): for each model cxrelay or its
emulator puts on the wire, its fields (JSON names), their types and enum
values, as a JSON Schema that refuses unknown fields. Run once per SDK
upgrade; the schemas are checked in and the tests read only them.

    scripts/contract_schemas.py /path/to/platform-client-sdk-python

`required` lists the fields the SDK's documentation marks required, plus
those cxrelay cannot work without (listed in READS below)."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

# Top-level contracts: schema file -> (root model, what carries it).
ROOTS = {
    "channel": ("Channel", "POST /api/v2/notifications/channels"),
    "channel_entity_listing": ("ChannelEntityListing", "GET /api/v2/notifications/channels"),
    "channel_topic_entity_listing": ("ChannelTopicEntityListing", "GET|PUT|POST .../channels/{id}/subscriptions"),
    "channel_topic": ("ChannelTopic", "each element of a subscriptions request body"),
    "async_conversation_query": ("AsyncConversationQuery", "POST /api/v2/analytics/conversations/details/jobs body"),
    "async_query_response": ("AsyncQueryResponse", "POST /api/v2/analytics/conversations/details/jobs"),
    "async_query_status": ("AsyncQueryStatus", "GET .../details/jobs/{jobId}"),
    "analytics_conversation_async_query_response": (
        "AnalyticsConversationAsyncQueryResponse", "GET .../details/jobs/{jobId}/results"),
    "data_availability_response": ("DataAvailabilityResponse", "GET .../details/jobs/availability"),
    "analytics_conversation_query_response": (
        "AnalyticsConversationQueryResponse", "POST /api/v2/analytics/conversations/details/query"),
    "batch_download_job_submission": ("BatchDownloadJobSubmission", "POST /api/v2/recording/batchrequests body"),
    "batch_download_job_submission_result": ("BatchDownloadJobSubmissionResult", "POST /api/v2/recording/batchrequests"),
    "batch_download_job_status_result": ("BatchDownloadJobStatusResult", "GET /api/v2/recording/batchrequests/{id}"),
    "url_response": ("UrlResponse", "GET /api/v2/downloads/{downloadId}?issueRedirect=false"),
    "error_body": ("ErrorBody", "every API error answer"),
    "queue_conversation_event_topic_conversation": (
        "QueueConversationEventTopicConversation", "eventBody of v2.routing.queues.{id}.conversations"),
    "customer_start_detail_event_topic_customer_start_event": (
        "CustomerStartDetailEventTopicCustomerStartEvent", "eventBody of v2.detail.events.conversation.{id}.customer.start"),
    "customer_end_detail_event_topic_customer_end_event": (
        "CustomerEndDetailEventTopicCustomerEndEvent", "eventBody of v2.detail.events.conversation.{id}.customer.end"),
    "acd_start_detail_event_topic_acd_start_event": (
        "AcdStartDetailEventTopicAcdStartEvent", "eventBody of v2.detail.events.conversation.{id}.acd.start"),
    "acd_end_detail_event_topic_acd_end_event": (
        "AcdEndDetailEventTopicAcdEndEvent", "eventBody of v2.detail.events.conversation.{id}.acd.end"),
    "user_start_detail_event_topic_user_start_event": (
        "UserStartDetailEventTopicUserStartEvent", "eventBody of v2.detail.events.conversation.{id}.user.start"),
    "user_end_detail_event_topic_user_end_event": (
        "UserEndDetailEventTopicUserEndEvent", "eventBody of v2.detail.events.conversation.{id}.user.end"),
    "acw_detail_event_topic_after_call_work_event": (
        "AcwDetailEventTopicAfterCallWorkEvent", "eventBody of v2.detail.events.conversation.{id}.acw"),
    "presence_event_user_presence": ("PresenceEventUserPresence", "eventBody of v2.users.{id}.presence"),
    "system_message_system_message": ("SystemMessageSystemMessage", "eventBody of v2.system.* messages"),
}

# Fields cxrelay reads and cannot do without (beyond what the SDK requires).
READS = {
    "Channel": ["id", "connectUri", "expires"],
    "ChannelTopic": ["id"],
    "ChannelTopicEntityListing": ["entities"],
    "ChannelEntityListing": ["entities"],
    "AsyncQueryResponse": ["jobId"],
    "AsyncQueryStatus": ["state"],
    "DataAvailabilityResponse": ["dataAvailabilityDate"],
    "AnalyticsConversation": ["conversationId", "conversationStart"],
    "AnalyticsConversationWithoutAttributes": ["conversationId", "conversationStart"],
    "BatchDownloadJobSubmissionResult": ["id"],
    "BatchDownloadJobStatusResult": ["status"],
    "BatchDownloadJobResult": ["conversationId"],
    "UrlResponse": ["url"],
    "ErrorBody": ["message", "code", "status"],
    "QueueConversationEventTopicConversation": ["id"],
    "SystemMessageSystemMessage": ["systemTopicType"],
}


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Sdk:
    def __init__(self, repo):
        self.repo = repo
        self.version = self.show("build/docs/Channel.md").strip().splitlines()[-1].strip("_ ")

    def show(self, path):
        return subprocess.run(["git", "-C", self.repo, "show", "HEAD:" + path],
                              capture_output=True, text=True, check=True).stdout

    def model(self, name):
        path = f"build/PureCloudPlatformClientV2/models/{snake(name)}.py"
        src = self.show(path)
        types = ast.literal_eval(re.search(r"self.swagger_types = (\{.*?\})", src, re.S).group(1))
        names = ast.literal_eval(re.search(r"self.attribute_map = (\{.*?\})", src, re.S).group(1))
        enums = {}
        for block in re.split(r"\n    @\w+\.setter\n", src)[1:]:
            attr = re.match(r"\s*def (\w+)\(", block).group(1)
            body = block.split("\n    @property")[0]
            allowed = re.search(r"allowed_values = (\[.*?\])", body, re.S)
            if allowed:
                enums[attr] = ast.literal_eval(allowed.group(1))
        doc = self.show(f"build/docs/{name}.md")
        required = []
        for line in doc.splitlines():
            m = re.match(r"\| \*\*(\w+)\*\* \|.*\|\s*\|$", line)
            if m and "[optional]" not in line:
                required.append(names[m.group(1)])
        fields = [(names[a], t, enums.get(a)) for a, t in types.items()]
        return path, fields, required


def schema_of(t, refs):
    if t.startswith("list["):
        return {"type": "array", "items": schema_of(t[5:-1], refs)}
    if t.startswith("dict("):
        value = t[5:-1].split(",", 1)[1].strip()
        return {"type": "object", "additionalProperties": schema_of(value, refs)}
    simple = {
        "str": {"type": "string"},
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "bool": {"type": "boolean"},
        "datetime": {"type": "string", "format": "date-time"},
        "date": {"type": "string", "format": "date"},
        "object": {},
    }
    if t in simple:
        return dict(simple[t])
    refs.append(t)
    return {"$ref": f"#/$defs/{t}"}


def build(sdk, root, carries):
    defs, todo, sources = {}, [root], []
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        path, fields, required = sdk.model(name)
        sources.append(path)
        refs = []
        props = {}
        for json_name, t, enum in fields:
            s = schema_of(t, refs)
            if enum:
                s["enum"] = enum
            props[json_name] = s
        need = sorted(set(required) | set(READS.get(name, [])))
        d = {"type": "object", "additionalProperties": False, "properties": props}
        if need:
            d["required"] = need
        defs[name] = d
        todo.extend(refs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"{root}: {carries}. From Genesys's platform-client-sdk-python {sdk.version}, "
                    f"files {', '.join(sorted(sources))}. Generated by scripts/contract_schemas.py; "
                    "`required` is the SDK's plus what cxrelay reads.",
        "$ref": f"#/$defs/{root}",
        "$defs": dict(sorted(defs.items())),
    }


def dump(schema):
    # One line per property keeps the files readable and diffs small.
    lines = ["{"]
    head = [(k, v) for k, v in schema.items() if k != "$defs"]
    for k, v in head:
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "$defs": {')
    defs = list(schema["$defs"].items())
    for i, (name, d) in enumerate(defs):
        lines.append(f"    {json.dumps(name)}: {{")
        lines.append('      "type": "object",')
        lines.append('      "additionalProperties": false,')
        if "required" in d:
            lines.append(f'      "required": {json.dumps(d["required"])},')
        lines.append('      "properties": {')
        props = list(d["properties"].items())
        for j, (p, s) in enumerate(props):
            comma = "," if j + 1 < len(props) else ""
            lines.append(f"        {json.dumps(p)}: {json.dumps(s)}{comma}")
        lines.append("      }")
        lines.append("    }" + ("," if i + 1 < len(defs) else ""))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    sdk = Sdk(sys.argv[1])
    out = Path(__file__).resolve().parent.parent / "tests" / "it" / "contract" / "schemas"
    out.mkdir(parents=True, exist_ok=True)
    for file, (root, carries) in ROOTS.items():
        schema = build(sdk, root, carries)
        (out / f"{file}.json").write_text(dump(schema))
        print(f"{file}.json: {len(schema['$defs'])} models")


if __name__ == "__main__":
    main()
