"""The auto-encoder: nested decoders, the clustering model, frozen batch norm, losses."""

import dataclasses

import pytest
import torch

from conftest import tiny_model_config
from reform.config import ModelConfig
from reform.errors import ConfigError
from reform.losses import aux_weights, cluster_loss, masked_mse, pretrain_loss
from reform.model import (ClusterAutoencoder, PretrainAutoencoder, inference_encoder,
                          training_flops)


@pytest.mark.parametrize("cfg", [tiny_model_config(), ModelConfig()])
def test_decoder_k_mirrors_layers_1_to_k(cfg):
    model = PretrainAutoencoder(cfg)
    x = torch.randn(2, 1, cfg.n_mels, cfg.window_frames)
    out = model(x)
    assert len(out.reconstructions) == cfg.n_layers == len(cfg.widths) + 1
    for k, (decoder, recon) in enumerate(zip(model.decoders, out.reconstructions), start=1):
        assert recon.shape == x.shape                        # every decoder rebuilds the whole window
        ups = [m for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
        assert len(ups) == min(k, len(cfg.widths))          # one mirror per convolutional layer <= k
        assert any(isinstance(m, torch.nn.Linear) for m in decoder.modules()) == (k == cfg.n_layers)
    assert out.embedding.shape == (2, cfg.embedding_dim)


def test_aux_losses_count_k_minus_1():
    cfg = tiny_model_config()
    model = PretrainAutoencoder(cfg)
    x = torch.randn(3, 1, cfg.n_mels, cfg.window_frames)
    mask = torch.ones(3, 1, 1, cfg.window_frames)
    total, terms = pretrain_loss(model(x), x, mask, aux_weights(0.5, cfg.n_layers - 1))
    aux = [k for k in terms if k.startswith("aux")]
    assert len(aux) == cfg.n_layers - 1 == 2
    terms = {name: value.item() for name, value in terms.items()}
    assert terms["total"] == pytest.approx(terms["main"] + 0.5 * sum(terms[k] for k in aux), rel=1e-5)
    with pytest.raises(ValueError, match="auxiliary"):
        aux_weights([1.0], 2)


def test_cluster_model_drops_aux_decoders_and_exposes_embedding():
    cfg = tiny_model_config()
    pre = PretrainAutoencoder(cfg)
    cluster = ClusterAutoencoder.from_pretrained(pre)
    assert not hasattr(cluster, "decoders")
    x = torch.randn(4, 1, cfg.n_mels, cfg.window_frames)
    pre.eval()
    out = cluster(x)
    torch.testing.assert_close(out.embedding, pre.encoder(x)[-1])
    torch.testing.assert_close(out.reconstruction, pre.main_decoder(out.embedding))


def test_fine_tuning_starts_every_decoder_from_the_trained_model():
    cfg = tiny_model_config()
    torch.manual_seed(0)
    trained = ClusterAutoencoder.from_pretrained(PretrainAutoencoder(cfg)).eval()
    model = PretrainAutoencoder(cfg).eval()
    model.start_from(trained)
    z = torch.randn(3, cfg.embedding_dim)
    torch.testing.assert_close(model.main_decoder(z), trained.decoder(z))
    # decoder k is the main decoder's last k layers: fed the main decoder's own map of
    # encoder layer k, it rebuilds exactly the window the main decoder does
    maps = [z]
    for layer in trained.decoder:
        maps.append(layer(maps[-1]))
    for k, decoder in enumerate(model.decoders[:-1], start=1):
        torch.testing.assert_close(decoder(maps[-1 - k]), maps[-1])
    again = PretrainAutoencoder(cfg)
    again.start_from(model)   # a pretraining model hands over its own auxiliary decoders
    for mine, theirs in zip(again.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_projection_head_carries_the_contrast_and_is_dropped_after_pretraining():
    cfg = dataclasses.replace(tiny_model_config(), projection_dim=5)
    pre = PretrainAutoencoder(cfg)
    x = torch.randn(4, 1, cfg.n_mels, cfg.window_frames)
    out = pre(x, x.flip(3))
    assert out.embedding.shape == (4, cfg.embedding_dim)
    assert [v.shape for v in out.views] == [(4, 5), (4, 5)]        # the contrast's space is the head's
    pre.eval()
    first, second = pre(x, x).views
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, pre.projection(pre.encoder(x)[-1]))
    plain = PretrainAutoencoder(tiny_model_config())(x, x)
    assert plain.views[0].shape == (4, tiny_model_config().embedding_dim)   # no head: the embedding
    assert PretrainAutoencoder(tiny_model_config())(x).views is None
    cluster = ClusterAutoencoder.from_pretrained(pre)
    assert not any("projection" in name for name in cluster.state_dict())
    with pytest.raises(ConfigError, match="projection_dim"):
        dataclasses.replace(cfg, projection_dim=-1)


@pytest.mark.parametrize("pool_time", [False, True])
def test_inference_encoder_folds_batch_norm_without_changing_embeddings(pool_time):
    cfg = dataclasses.replace(tiny_model_config(), pool_time=pool_time)
    model = PretrainAutoencoder(cfg)
    model.train()
    for _ in range(3):  # batch statistics far from the initial 0 / 1
        model(torch.randn(8, 1, cfg.n_mels, cfg.window_frames) * 4 + 2)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.uniform_(m.weight, 0.5, 2.0)
            torch.nn.init.uniform_(m.bias, -1.0, 1.0)
    model.eval()
    folded = inference_encoder(model.encoder)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    x = torch.randn(5, 1, cfg.n_mels, cfg.window_frames) * 4 + 2
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.encoder(x)[-1], rtol=1e-4, atol=1e-4)
        # with the last feature map's statistics: the same embedding, then each channel's mean and std
        outputs = model.encoder(x)
        feature_map = outputs[-2].flatten(2)
        expected = torch.cat([outputs[-1], feature_map.mean(2), feature_map.std(2)], 1)
        with_map = inference_encoder(model.encoder, map_statistics=True)(x)
        assert with_map.shape == (5, cfg.embedding_dim + 2 * cfg.widths[-1])
        torch.testing.assert_close(with_map, expected, rtol=1e-4, atol=1e-4)


def test_a_time_pooled_dense_layer_reads_each_band_over_time_wherever_a_sound_falls():
    """Known answer: the dense layer sees each channel and band's mean and spread over time, so
    reordering the last map's time steps leaves the embedding as it is; the decoders still
    rebuild the whole window from it."""
    from reform.model import DenseLayer, TimeStatistics

    feature_map = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).reshape(2, 3, 2, 4) ** 0.5
    stats = TimeStatistics()(feature_map)
    assert stats.shape == (2, 2 * 3 * 2)
    torch.testing.assert_close(stats[:, :6], feature_map.mean(3).flatten(1))
    torch.testing.assert_close(stats[:, 6:], feature_map.std(3).flatten(1))
    dense = DenseLayer((3, 2, 4), 5, pool_time=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(dense(feature_map[..., [2, 0, 3, 1]]), dense(feature_map))
        flat = DenseLayer((3, 2, 4), 5).eval()
        assert not torch.allclose(flat(feature_map[..., [2, 0, 3, 1]]), flat(feature_map))
    cfg = dataclasses.replace(tiny_model_config(), pool_time=True)
    model = PretrainAutoencoder(cfg)
    x = torch.randn(2, 1, cfg.n_mels, cfg.window_frames)
    out = model(x)
    assert out.embedding.shape == (2, cfg.embedding_dim) and out.reconstructions[-1].shape == x.shape
    assert model.encoder.layers[-1].linear.in_features == 2 * cfg.widths[-1] * (cfg.n_mels >> len(cfg.widths))


def test_batchnorm_is_frozen_in_the_cluster_model():
    cfg = tiny_model_config()
    model = ClusterAutoencoder.from_pretrained(PretrainAutoencoder(cfg))
    model.train()  # must not wake the frozen statistics
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    for _ in range(3):
        x = torch.randn(4, 1, cfg.n_mels, cfg.window_frames) * 3 + 1
        out = model(x)
        loss = masked_mse(out.reconstruction, x, torch.ones(4, 1, 1, cfg.window_frames)) + cluster_loss(out.embedding)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    for name, value in before.items():
        is_bn = any(name.startswith(n) for n in _bn_names(model))
        if is_bn:   # running mean/var, affine weight/bias and batch counters: all unchanged
            torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    assert norms and all(not m.training for m in norms)
    changed = [n for n, v in before.items() if not torch.equal(after[n], v)]
    assert changed  # the rest of the model did learn


def _bn_names(model):
    return [name + "." for name, m in model.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def test_cluster_loss_zero_for_identical_windows_positive_otherwise():
    same = torch.randn(1, 8).repeat(5, 1)
    assert cluster_loss(same).item() == pytest.approx(0.0, abs=1e-12)
    assert cluster_loss(torch.randn(5, 8)).item() > 0.0
    e = torch.tensor([[0.0, 0.0], [2.0, 4.0]])
    assert cluster_loss(e).item() == pytest.approx((1 + 1 + 4 + 4) / 4)  # mean of squared deviations


def test_masked_mse_ignores_padding():
    x = torch.zeros(1, 1, 2, 4)
    pred = torch.tensor([[[[1.0, 1.0, 9.0, 9.0], [1.0, 1.0, 9.0, 9.0]]]])
    mask = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    assert masked_mse(pred, x, mask).item() == pytest.approx(1.0)


def test_flops_and_config_checks():
    cfg = ModelConfig()
    flops = training_flops(PretrainAutoencoder(cfg), cfg)
    assert 1e9 < flops < 2e10
    with pytest.raises(ConfigError, match="its 128 bands and 100 frames must be divisible by 64"):
        ModelConfig(window_frames=100)
