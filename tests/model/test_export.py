import onnxruntime as ort
import torch

from model.export import OUTPUTS, _head_nodes, to_onnx
from model.network.classifier import HeadedNet
from model.network.net import fold_batch_norm, resnet18


def test_onnx_graph_gives_torchs_outputs_at_any_batch_size() -> None:
    torch.manual_seed(0)
    net = fold_batch_norm(resnet18())
    session = ort.InferenceSession(to_onnx(net, torch.zeros(1, 1, 28, 28), ("y",)))
    for batch in (1, 5):  # exported at batch 1: the batch dimension must stay free
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            expected = net(x)
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_both_outputs_and_the_heads_left_in_float() -> None:
    torch.manual_seed(0)
    head = {"weight": torch.randn(512).mul(0.05).tolist(), "bias": 0.1}
    model = HeadedNet(fold_batch_norm(resnet18()).eval(), 0.7, head).eval()
    graph = to_onnx(model, torch.zeros(1, 1, 28, 28))
    session = ort.InferenceSession(graph)
    assert [o.name for o in session.get_outputs()] == list(OUTPUTS)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        probs, garment = model(x)
    got_probs, got_garment = session.run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got_probs), probs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(got_garment), garment, atol=1e-5, rtol=1e-4)
    # Left out of quantization: both Linear layers on the pooled features and what follows them.
    kept = _head_nodes(graph)
    ops = [
        n.op_type for n in __import__("onnx").load_from_string(graph).graph.node if n.name in kept
    ]
    assert ops.count("Gemm") == 2 and "Softmax" in ops and "Sigmoid" in ops
    assert "Conv" not in ops and "GlobalAveragePool" not in ops
