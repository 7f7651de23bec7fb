import onnxruntime as ort
import torch

from model.export import to_onnx
from model.net import fold_batch_norm, resnet18


def test_onnx_graph_gives_torchs_outputs_at_any_batch_size() -> None:
    torch.manual_seed(0)
    net = fold_batch_norm(resnet18())
    session = ort.InferenceSession(to_onnx(net, torch.zeros(1, 1, 28, 28)))
    for batch in (1, 5):  # exported at batch 1: the batch dimension must stay free
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            expected = net(x)
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
