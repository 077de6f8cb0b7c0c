import pytest

from leannet.errors import reason

# the shape of OpenVINO's and NNCF's messages: where it raised first, why last
OPENVINO = """Exception from src/inference/src/cpp/infer_request.cpp:223:
Exception from src/plugins/intel_cpu/src/infer_request.cpp:408:
Can't set the input tensor with index: 0, because the model input (shape=[2,3,16,16]) and the tensor (shape=(2.4.16.16)) are incompatible

"""


def test_reason_skips_source_locations():
    assert reason(RuntimeError(OPENVINO)).startswith("Can't set the input tensor with index: 0")
    check = "Check 'false' failed at src/core/src/shape_util.cpp:65:\nshape mismatch"
    assert reason(RuntimeError(check)) == "shape mismatch"


@pytest.mark.parametrize(("text", "said"), [
    ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad dims\nmore", "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad dims"),
    ("\n  padded line  \n", "padded line"),
    ("Exception from src/a.cpp:1:\n", "Exception from src/a.cpp:1:"),  # nothing else: keep what there is
    ("", "ValueError"),
    ("see model.onnx: no such file", "see model.onnx: no such file"),  # a file name is not a location line
])
def test_reason_takes_the_first_line_that_says_something(text, said):
    assert reason(ValueError(text)) == said


def test_reason_is_cut_to_the_limit():
    assert reason(RuntimeError("x" * 500)) == "x" * 300
    assert reason(RuntimeError("x" * 500), 10) == "x" * 10
