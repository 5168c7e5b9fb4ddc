"""The grant queue's sender: the POST queues a grant's chunks (or a tag grant's first
expansion step), the worker queues the chunks it expands from a tag's segment."""
from __future__ import annotations

import json

from membership import aws
from membership.config import get_settings

MAX_BATCH = 10  # SendMessageBatch's limit


def _sqs_client():
    return aws.client("sqs")


def enqueue(messages: list[dict]) -> None:
    """One message per chunk, ten per call; any refused entry fails the request (retry)."""
    url = get_settings().grant_queue_url
    for i in range(0, len(messages), MAX_BATCH):
        batch = messages[i:i + MAX_BATCH]
        response = _sqs_client().send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "MessageBody": json.dumps(m, sort_keys=True)}
            for n, m in enumerate(batch)])
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused {len(response['Failed'])} grant messages")
