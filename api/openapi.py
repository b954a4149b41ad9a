"""The OpenAPI 3.1 description served at /v1/openapi.json. Its request parameters are read from
api/wire.py's own tables, so the description cannot drift from what the server accepts."""

from __future__ import annotations

from typing import Any

from api.wire import MAX_TEMPERATURE, MODEL, NEUTRAL, WHY_REFUSED, WITHOUT_EFFECT


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_response(description: str, *, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if retry:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer"},
            }
        }
    return response


def _request_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "model": {"type": "string", "enum": [MODEL], "description": "The PolicyDesk assistant."},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": _ref("Message"),
            "description": (
                "The last message is the question and must be the user's. Earlier user and assistant "
                "messages are the history (redacted like the chat's). System and developer messages "
                "are accepted and not used: PolicyDesk's own rules govern every answer."
            ),
        },
        "stream": {"type": "boolean", "default": False},
        "stream_options": {
            "type": "object",
            "properties": {"include_usage": {"type": "boolean"}, "include_obfuscation": {"type": "boolean"}},
            "additionalProperties": False,
            "description": (
                "Only with stream: true. include_usage adds a last chunk with token usage; "
                "include_obfuscation is accepted and has no effect."
            ),
        },
        "max_tokens": {
            "type": "integer",
            "minimum": 1,
            "description": "The most tokens a model writes; lowered to the server's limit. Quoted policy text is not counted.",
        },
        "max_completion_tokens": {"type": "integer", "minimum": 1, "description": "Same as max_tokens."},
        "temperature": {"type": "number", "minimum": 0, "maximum": MAX_TEMPERATURE},
    }
    for name, neutral in NEUTRAL.items():
        accepted = " or ".join(repr(v) for v in neutral) or "nothing"
        properties[name] = {
            "description": (
                f"Not supported ({WHY_REFUSED.get(name, 'no effect on a grounded answer')}): "
                f"accepted only as null or {accepted}; anything else is a 400."
            )
        }
    for name in WITHOUT_EFFECT:
        properties[name] = {"description": "Accepted; no effect on the answer."}
    return {
        "type": "object",
        "required": ["model", "messages"],
        "properties": properties,
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Any]:
    citation = {
        "type": "object",
        "required": ["n", "document", "version", "section", "url", "quote"],
        "properties": {
            "n": {"type": "integer", "description": "The [n] marker in the content"},
            "document": {"type": "string", "description": "The document's title"},
            "document_id": {"type": "integer"},
            "version": {"type": ["integer", "null"], "description": "The document's current version"},
            "section": {"type": ["string", "null"], "description": "The heading path of the passage"},
            "page": {"type": ["integer", "null"]},
            "url": {"type": "string", "description": "The passage in PolicyDesk's document view"},
            "quote": {"type": "string", "description": "The policy sentences the answer rests on"},
            "cited": {
                "type": "boolean",
                "description": "Whether the content cites it (else: also consulted)",
            },
        },
    }
    extension = {
        "type": "object",
        "description": "PolicyDesk's extension; clients may ignore it (the content ends with a Sources: list).",
        "properties": {
            "citations": {"type": "array", "items": _ref("Citation")},
            "verified": {
                "type": "boolean",
                "description": "Cites a passage and holds only what the passages say",
            },
            "declined": {"type": "boolean", "description": "The policies do not cover the question"},
            "checks": {"type": "array", "items": {"type": "string"}, "description": "Why it is unverified"},
            "mode": {"type": "string", "enum": ["evidence", "generate", ""]},
            "fallback": {"type": "boolean", "description": "No model answered: the quotes alone"},
            "message_id": {"type": "string", "format": "uuid"},
        },
    }
    usage = {
        "type": "object",
        "properties": {
            k: {"type": "integer"} for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        },
    }
    return {
        "ChatCompletionRequest": _request_schema(),
        "Message": {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
                "content": {
                    "oneOf": [
                        {"type": "string"},
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                            },
                        },
                        {"type": "null"},
                    ],
                    "description": "Text only: images, audio and files are refused.",
                },
                "name": {"type": "string"},
            },
        },
        "Citation": citation,
        "PolicyDesk": extension,
        "Usage": usage,
        "ChatCompletion": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "chat.completion"},
                "created": {"type": "integer"},
                "model": {"const": MODEL},
                "choices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "finish_reason": {"type": "string", "enum": ["stop", "length"]},
                            "message": {
                                "type": "object",
                                "properties": {
                                    "role": {"const": "assistant"},
                                    "content": {
                                        "type": "string",
                                        "description": "Markdown, ending with Sources:",
                                    },
                                    "policydesk": _ref("PolicyDesk"),
                                },
                            },
                        },
                    },
                },
                "usage": _ref("Usage"),
            },
        },
        "ChatCompletionChunk": {
            "type": "object",
            "description": (
                "One server-sent event, `data: {...}`; the stream ends with `data: [DONE]`. The chunk "
                "with a finish_reason carries the `policydesk` extension; with include_usage a last "
                "chunk has empty choices and the usage."
            ),
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "chat.completion.chunk"},
                "created": {"type": "integer"},
                "model": {"const": MODEL},
                "choices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "delta": {
                                "type": "object",
                                "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}},
                            },
                            "finish_reason": {"type": ["string", "null"], "enum": ["stop", "length", None]},
                        },
                    },
                },
                "usage": {"oneOf": [_ref("Usage"), {"type": "null"}]},
                "policydesk": _ref("PolicyDesk"),
            },
        },
        "Model": {
            "type": "object",
            "properties": {
                "id": {"const": MODEL},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": {"type": ["string", "null"]},
                        "code": {"type": "string"},
                    },
                }
            },
        },
    }


def openapi_document(*, server: str) -> dict[str, Any]:
    auth_errors = {
        "401": _error_response("No key, or a wrong, revoked or expired key, or its user is deactivated"),
        "403": _error_response("The key's user may not ask, or API access is off for their role"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PolicyDesk OpenAI-compatible API",
            "version": "1",
            "description": (
                "Checked, cited, redacted policy answers in OpenAI's chat-completions format. A key acts "
                "as its user: same documents, same rate limit as the chat, same redaction and audit. "
                "See docs/api.md."
            ),
        },
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "paths": {
            "/chat/completions": {
                "post": {
                    "summary": "Ask a policy question",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ChatCompletionRequest")}},
                    },
                    "responses": {
                        "200": {
                            "description": "The answer: whole, or as server-sent events with stream: true",
                            "content": {
                                "application/json": {"schema": _ref("ChatCompletion")},
                                "text/event-stream": {"schema": _ref("ChatCompletionChunk")},
                            },
                        },
                        "400": _error_response(
                            "A malformed request, or a parameter PolicyDesk does not support"
                        ),
                        **auth_errors,
                        "404": _error_response("An unknown model"),
                        "413": _error_response("The request or the question is too long"),
                        "429": _error_response(
                            "Over the per-user rate limit (shared with the chat)", retry=True
                        ),
                        "503": _error_response("Every answering service is busy", retry=True),
                    },
                }
            },
            "/models": {
                "get": {
                    "summary": "The assistants a key may use",
                    "responses": {
                        "200": {
                            "description": "The model list",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "object": {"const": "list"},
                                            "data": {"type": "array", "items": _ref("Model")},
                                        },
                                    }
                                }
                            },
                        },
                        **auth_errors,
                    },
                }
            },
            "/models/{model}": {
                "get": {
                    "summary": "One assistant",
                    "parameters": [
                        {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The model",
                            "content": {"application/json": {"schema": _ref("Model")}},
                        },
                        **auth_errors,
                        "404": _error_response("An unknown model"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A PolicyDesk API key"}
            },
            "schemas": _schemas(),
        },
    }
