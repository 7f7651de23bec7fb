"""Request and response models: what Swagger UI shows and what every endpoint returns."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The examples of the explain=true fields: a blank 28x28, and a blob of evidence in its centre.
BLACK_28_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAM0lEQVQoFX3BAQEAAABAIP6f9kDJkCFDhgwZMmTIkCFDhg"
    "wZMmTIkCFDhgwZMmTIkCFDRjEqAB1OvoS2AAAAAElFTkSuQmCC"
)
SALIENCY_EXAMPLE = [
    [round(max(0.0, 1 - ((r - 13.5) ** 2 + (c - 13.5) ** 2) / 60), 2) for c in range(28)]
    for r in range(28)
]


class ErrorResponse(BaseModel):
    """Every error: one sentence saying what was wrong."""

    detail: str = Field(examples=["multipart field 'image' is missing"])


class ClassScore(BaseModel):
    label: str = Field(examples=["Ankle boot"])
    class_id: int = Field(ge=0, examples=[9])
    probability: float = Field(ge=0, le=1, examples=[0.97])


class ModelRef(BaseModel):
    name: str = Field(examples=["d2l-resnet18"], description="the model that answered")
    version: str = Field(examples=["1"], description="its version in the model repository")
    checkpoint: str = Field(description="first 12 hex digits of the weights' sha256")


class Timing(BaseModel):
    """Milliseconds spent in each stage of this request."""

    decode: float
    preprocess: float
    queue: float
    inference: float
    total: float


class Prediction(BaseModel):
    label: str = Field(examples=["Ankle boot"])
    class_id: int = Field(examples=[9])
    confidence: float = Field(examples=[0.97], description="the top class's calibrated probability")
    none_of_the_classes: bool = Field(
        examples=[False],
        description="true when the checkpoint's garment score (its garment head, else the "
        "confidence) is below its calibrated threshold: the photo is probably none of the "
        "classes (a hat, shorts, a skirt, not clothing). Always false for a checkpoint without "
        "calibration.",
    )
    garment_score: float = Field(
        examples=[0.98],
        description="the score behind none_of_the_classes, in [0, 1]: how sure the checkpoint's "
        "garment head is that the photo shows one of the classes (without a head, the top "
        "class's probability). The flag is this below the checkpoint's calibrated threshold; "
        "choose another threshold here for another operating point.",
    )
    top_k: list[ClassScore]
    # With explain=true only; absent otherwise.
    network_input: str | None = Field(
        None,
        description="with explain=true: the 28x28 image the network saw, as a base64 PNG "
        "(light garment on black, as Fashion-MNIST has it)",
        examples=[BLACK_28_PNG],
    )
    network_input_box: list[float] | None = Field(
        None,
        min_length=4,
        max_length=4,
        description="with explain=true: the part of the photo the 28x28 shows, as (left, top, "
        "right, bottom) fractions of the upright photo's width and height; padding to a square "
        "may reach past 0 or 1",
        examples=[[0.1, -0.05, 0.9, 1.05]],
    )
    saliency: list[list[float]] | None = Field(
        None,
        description="with explain=true: 28 rows of 28 values in [0, 1], where the evidence for "
        "the answer lies: how far the top class's probability falls when that part of the "
        "28x28 is blanked (occlusion sensitivity), 1 at the most telling place",
        examples=[SALIENCY_EXAMPLE],
    )


class PredictResponse(Prediction):
    model: ModelRef
    device: str = Field(examples=["cpu"])
    timing_ms: Timing


class BatchItem(Prediction):
    filename: str | None = None


class BatchPredictResponse(BaseModel):
    count: int
    results: list[BatchItem]
    model: ModelRef
    device: str
    timing_ms: Timing


class LayerInfo(BaseModel):
    name: str = Field(examples=["4"])
    type: str = Field(examples=["Sequential"])
    output_shape: list[int] = Field(examples=[[1, 512, 3, 3]])
    params: int = Field(examples=[8395264])


class SummaryResponse(BaseModel):
    architecture: str
    input_shape: list[int] = Field(examples=[[1, 1, 96, 96]])
    depth: int
    layers: list[LayerInfo]
    total_params: int = Field(examples=[11178378])
    trainable_params: int


class ModelInfo(BaseModel):
    architecture: str
    classes: list[str]
    input_size: int
    in_channels: int
    device: str
    dtype: str
    backend: str = Field(examples=["onnxruntime 1.32.0 (float32, 1 thread)"])
    checkpoint: str = Field(description="short sha256 of the weights")
    checkpoint_file: str
    metadata: dict[str, Any] = Field(
        description="the checkpoint's JSON metadata: recipe, metrics, ..."
    )


class Live(BaseModel):
    status: str = Field(examples=["alive"])


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    device: str
    checkpoint: str


# The Open Inference Protocol (KServe v2) REST bodies, for the OpenAPI document. The routes read
# and write them through app.protocol.oip, which also handles the binary tensor data extension.


class V2Error(BaseModel):
    """Every error under /v2, as the protocol has it."""

    error: str = Field(examples=["unknown model 'resnet'; this server serves 'd2l-resnet18'"])


class V2ServerMetadata(BaseModel):
    name: str = Field(examples=["fashion-resnet"])
    version: str = Field(examples=["0.1.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data"]])


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2TensorSpec(BaseModel):
    name: str = Field(examples=["image"])
    datatype: str = Field(examples=["BYTES"])
    shape: list[int] = Field(examples=[[-1]], description="-1: any size")


class V2ModelMetadata(BaseModel):
    name: str = Field(examples=["d2l-resnet18"])
    versions: list[str] = Field(description="the served checkpoint's short sha256")
    platform: str = Field(examples=["onnxruntime"])
    inputs: list[V2TensorSpec]
    outputs: list[V2TensorSpec]


class V2RequestInput(BaseModel):
    name: Literal["image", "pixels"] = Field(
        examples=["image"], description="'image' (BYTES [B]) or 'pixels' (UINT8 [B, 28, 28])"
    )
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=3, examples=[[1]])
    datatype: Literal["BYTES", "UINT8"] = Field(examples=["BYTES"])
    parameters: dict[str, Any] | None = Field(
        None, description='{"binary_data_size": N} when the data follows the JSON in binary'
    )
    data: list[Any] | None = Field(
        None, description="row-major values; an image file in JSON is a base64 string"
    )


class V2RequestOutput(BaseModel):
    name: Literal["probabilities", "label"] = Field(examples=["probabilities"])
    parameters: dict[str, Any] | None = Field(None, examples=[{"binary_data": True}])


class V2InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, examples=[{"binary_data_output": False}])
    inputs: list[V2RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[V2RequestOutput] | None = Field(
        None, min_length=1, description="default: every output"
    )


class V2ResponseOutput(BaseModel):
    name: str = Field(examples=["label"])
    shape: list[int] = Field(examples=[[1]])
    datatype: str = Field(examples=["BYTES"])
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(None, examples=[["Ankle boot"]])


class V2InferenceResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[V2ResponseOutput]


class ModelInput(BaseModel):
    """What a model's checkpoint says it takes."""

    channels: int = Field(examples=[1])
    size: int = Field(examples=[28], description="height and width in pixels")
    view: str = Field(examples=["silhouette"], description="silhouette or photo")


class ModelVersionInfo(BaseModel):
    """One version in the model repository: its state, and for a ready one what serves it."""

    name: str = Field(examples=["d2l-resnet18"])
    version: str = Field(examples=["1"])
    state: str = Field(examples=["READY"], description="LOADING, READY, UNLOADING, UNAVAILABLE "
                       "or empty (on disk, not loaded)")  # fmt: skip
    reason: str = Field("", examples=["failed to load: checkpoint weights ... do not match"])
    input: ModelInput | None = None
    backend: str | None = Field(None, examples=["onnxruntime 1.32.0 (fp32, 1 thread)"])
    checkpoint: str | None = Field(None, description="first 12 hex digits of the weights' sha256")
    test_acc: float | None = Field(None, description="Fashion-MNIST test accuracy at training")


class ModelsResponse(BaseModel):
    """Every model version on disk or loaded, and which model answers without ?model=."""

    default: str = Field(examples=["d2l-resnet18"])
    control: str = Field(examples=["none"], description="MODEL_CONTROL: none, explicit or poll")
    models: list[ModelVersionInfo]


class V2RepositoryModel(BaseModel):
    """A row of the Open Inference Protocol's repository index (as Triton writes it)."""

    name: str
    version: str
    state: str
    reason: str = ""
