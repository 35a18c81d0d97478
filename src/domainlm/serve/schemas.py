"""Request and response bodies of the HTTP API (pydantic), in text-embeddings-inference's shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Texts = str | list[str]


def valid_unicode(v):
    """Reject lone surrogates (valid in a JSON escape, not in UTF-8): the tokenizer cannot take them."""
    for s in [v] if isinstance(v, str) else v:
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text contains a lone surrogate (not valid Unicode)") from None
    return v


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients of TEI/OpenAI send fields we do not use


class EmbedRequest(_Req):
    inputs: Texts = Field(description="a text or a list of texts")
    normalize: bool = Field(True, description="L2-normalise the embeddings")
    truncate: bool = Field(False, description="cut over-long texts instead of refusing them (413)")
    _unicode = field_validator("inputs")(valid_unicode)


class OpenAIEmbedRequest(_Req):
    input: Texts = Field(description="a text or a list of texts")
    model: str | None = Field(None, description="ignored: the server holds one model")
    encoding_format: Literal["float", "base64"] = "float"
    _unicode = field_validator("input")(valid_unicode)


class PredictRequest(_Req):
    inputs: Texts
    raw_scores: bool = Field(False, description="logits instead of softmax probabilities")
    truncate: bool = False
    _unicode = field_validator("inputs")(valid_unicode)


class FillMaskRequest(_Req):
    inputs: Texts = Field(description="text(s) with exactly one mask token each")
    top_k: int = Field(5, ge=1, le=100)
    truncate: bool = False
    _unicode = field_validator("inputs")(valid_unicode)


class GenerateParameters(_Req):
    max_new_tokens: int = Field(32, ge=1, description="capped by the server's max_new_tokens")
    temperature: float = Field(0.0, ge=0.0, le=100.0, description="0: greedy")
    top_k: int = Field(0, ge=0, le=100_000, description="sample among the k likeliest (0: all)")
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class GenerateRequest(_Req):
    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    truncate: bool = False
    _unicode = field_validator("inputs")(valid_unicode)


class Score(BaseModel):
    label: str
    score: float


class FillMaskItem(BaseModel):
    score: float
    token: int
    token_str: str
    sequence: str


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbedResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class GenerateResponse(BaseModel):
    generated_text: str


class ErrorResponse(BaseModel):
    error: str
    error_type: str


ERRORS = {c: {"model": ErrorResponse} for c in (401, 413, 422, 429, 503)}


class SearchRequest(_Req):
    inputs: str = Field(description="the query")
    top_k: int = Field(5, ge=1, le=50)
    truncate: bool = False
    _unicode = field_validator("inputs")(valid_unicode)


class SearchHit(BaseModel):
    score: float = Field(description="cosine similarity of the mean-pooled embeddings")
    id: str
    text: str = Field(description="the document's first characters")
