"""The convolutional auto-encoder: encoder layers, one nested decoder per layer, a cluster output.

Pure torch, no I/O.  Shapes for the default configuration (K = 7 layers)::

    input                 (B, 1, 128, 640)   one channel's normalised log-mel window
    encoder layer 1       (B, 16, 64, 320)   conv 3x3 stride 2 -> batch norm -> ReLU
    encoder layer 2       (B, 32, 32, 160)
    encoder layer 3       (B, 64, 16, 80)
    encoder layer 4       (B, 128, 8, 40)
    encoder layer 5       (B, 128, 4, 20)
    encoder layer 6       (B, 128, 2, 10)
    encoder layer 7       (B, 128)           flatten -> linear -> batch norm: the embedding

Decoder k mirrors encoder layers k, k-1, ..., 1 (transposed convolutions, and a
linear layer for the dense one) and reconstructs the whole input window from
layer k's output.  Decoder K is the main decoder, decoders 1..K-1 are auxiliary.
Every layer halves the resolution with a strided convolution instead of a
full-resolution convolution followed by pooling: the full-resolution layers
dominated the cost on a CPU (bench/train.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig


def _map_shape(cfg: ModelConfig, k: int) -> tuple[int, int, int]:
    """(channels, height, width) after k convolutional layers (k = 0 is the input)."""
    if k == 0:
        return 1, cfg.n_mels, cfg.window_frames
    scale = 2 ** k
    return cfg.widths[k - 1], cfg.n_mels // scale, cfg.window_frames // scale


class ConvLayer(nn.Sequential):
    """Encoder layer: convolution with stride 2 (halves height and width) -> batch norm -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TimeStatistics(nn.Module):
    """Mean and standard deviation over time of every channel and band of a feature map:
    (B, C, H, W) -> (B, 2 C H), in float32 (a spread of 10 values in bfloat16 is mostly noise)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return torch.cat([x.mean(3).flatten(1), x.std(3).flatten(1)], 1)


class DenseLayer(nn.Module):
    """Final encoder layer: flatten the last feature map -> linear -> batch norm = the embedding.

    With ``pool_time`` the linear layer reads the map's statistics over time
    (:class:`TimeStatistics`) instead of every place of it, so that the embedding no longer
    depends on where in the window a sound falls, as the temporal pooling of tagging
    networks such as musicnn does.
    """

    def __init__(self, in_shape: tuple[int, int, int], dim: int, pool_time: bool = False):
        super().__init__()
        c, h, w = in_shape
        self.read = TimeStatistics() if pool_time else nn.Flatten(1)
        self.linear = nn.Linear(2 * c * h if pool_time else c * h * w, dim, bias=False)
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(self.read(x)))   # (B, C, H, W) -> (B, D)


class UpLayer(nn.Sequential):
    """Mirror of a ConvLayer: transposed convolution with stride 2 (doubles height and width).

    The mirror of the first layer is the decoder's output: one channel, no batch
    norm and no non-linearity, since the normalised input takes any real value.
    """

    def __init__(self, c_in: int, c_out: int, output: bool):
        layers: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=output)]
        if not output:
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class UnDenseLayer(nn.Module):
    """Mirror of the DenseLayer: linear -> batch norm -> ReLU, reshaped to the last feature map."""

    def __init__(self, dim: int, out_shape: tuple[int, int, int]):
        super().__init__()
        self.shape = out_shape
        c, h, w = out_shape
        self.linear = nn.Linear(dim, c * h * w, bias=False)
        self.norm = nn.BatchNorm1d(c * h * w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.linear(z))).unflatten(1, self.shape)  # (B, D) -> (B, C, H, W)


class Encoder(nn.Module):
    """K layers; returns the output of every layer (the last one is the embedding)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chans = (1, *cfg.widths)
        self.layers = nn.ModuleList(ConvLayer(chans[i], chans[i + 1], cfg.kernel_size)
                                    for i in range(len(cfg.widths)))
        self.layers.append(DenseLayer(_map_shape(cfg, len(cfg.widths)), cfg.embedding_dim, cfg.pool_time))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


class Decoder(nn.Sequential):
    """Mirrors encoder layers k..1 and reconstructs the input window, (B, 1, n_mels, frames)."""

    def __init__(self, cfg: ModelConfig, k: int):
        n_conv = len(cfg.widths)
        layers: list[nn.Module] = []
        if k == n_conv + 1:
            layers.append(UnDenseLayer(cfg.embedding_dim, _map_shape(cfg, n_conv)))
            k = n_conv
        for j in range(k, 0, -1):
            layers.append(UpLayer(_map_shape(cfg, j)[0], _map_shape(cfg, j - 1)[0], output=j == 1))
        super().__init__(*layers)


class ProjectionHead(nn.Sequential):
    """The small MLP the song contrast acts on during pretraining, dropped afterwards.

    Contrast makes what it acts on blind to the augmentations (gain, equalisation,
    pitch); acting on a head lets the embedding below it keep some of what they
    change, which songs of one style may share (as in SimCLR).
    """

    def __init__(self, dim: int, out: int):
        super().__init__(nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
                         nn.Linear(dim, out))


@dataclass
class PretrainOutput:
    embedding: torch.Tensor              # (B, D)
    reconstructions: list[torch.Tensor]  # K tensors (B, 1, n_mels, frames): auxiliary 1..K-1, then main
    views: tuple[torch.Tensor, torch.Tensor] | None = None
    # ((B, P), (B, P)): both views in the space the song contrast acts on (the projection
    # head's output, or the embedding itself), when a second view is given


@dataclass
class ClusterOutput:
    embedding: torch.Tensor       # (B, D): the cluster output on the final encoder layer
    reconstruction: torch.Tensor  # (B, 1, n_mels, frames): the main decoder


class PretrainAutoencoder(nn.Module):
    """The pretraining model: the encoder and one decoder after every encoder layer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoders = nn.ModuleList(Decoder(cfg, k) for k in range(1, cfg.n_layers + 1))
        self.projection = ProjectionHead(cfg.embedding_dim, cfg.projection_dim) if cfg.projection_dim else None

    @property
    def main_decoder(self) -> Decoder:
        return self.decoders[-1]

    def start_from(self, trained: PretrainAutoencoder | ClusterAutoencoder) -> None:
        """Take a trained model's weights (same settings), to fine-tune it.

        A clustering model has lost its auxiliary decoders. Decoder k mirrors encoder layers
        k..1, as the main decoder's last k layers do, so it starts as a copy of them: a random
        decoder would send noise back into the trained encoder through its loss.
        """
        self.encoder.load_state_dict(trained.encoder.state_dict())
        if isinstance(trained, PretrainAutoencoder):
            self.decoders.load_state_dict(trained.decoders.state_dict())
            return
        self.main_decoder.load_state_dict(trained.decoder.state_dict())
        for k, decoder in enumerate(self.decoders[:-1], start=1):
            decoder.load_state_dict(nn.Sequential(*list(trained.decoder)[-k:]).state_dict())

    def forward(self, x: torch.Tensor, second: torch.Tensor | None = None) -> PretrainOutput:
        """``second`` (B, 1, M, T), other windows of the same songs, is only encoded (for the
        song contrast); taking it here keeps one forward per step, as DistributedDataParallel wants."""
        features = self.encoder(x)                                        # K outputs
        recon = [decoder(f) for decoder, f in zip(self.decoders, features)]  # K x (B, 1, M, T)
        views = None
        if second is not None:
            views = (features[-1], self.encoder(second)[-1])              # 2 x (B, D)
            if self.projection is not None:   # one call, so that its batch norm sees both views
                views = tuple(self.projection(torch.cat(views)).chunk(2))    # 2 x (B, P)
        return PretrainOutput(embedding=features[-1], reconstructions=recon, views=views)


class ClusterAutoencoder(nn.Module):
    """The clustering model: auxiliary decoders (and any projection head) removed, the main
    decoder kept, and the final encoder layer exposed as a second output for the clustering loss.

    Batch norm is frozen in this model (running statistics and affine parameters),
    because its batches are windows of one song and would skew the statistics.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg, cfg.n_layers)
        self.freeze_batchnorm()

    @classmethod
    def from_pretrained(cls, pretrained: PretrainAutoencoder) -> ClusterAutoencoder:
        model = cls(pretrained.cfg)
        model.encoder.load_state_dict(pretrained.encoder.state_dict())
        model.decoder.load_state_dict(pretrained.main_decoder.state_dict())
        return model

    def freeze_batchnorm(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)

    def train(self, mode: bool = True) -> ClusterAutoencoder:
        super().train(mode)
        self.freeze_batchnorm()  # model.train() must never wake the frozen statistics
        return self

    def forward(self, x: torch.Tensor) -> ClusterOutput:
        embedding = self.encoder(x)[-1]                                   # (B, D)
        return ClusterOutput(embedding=embedding, reconstruction=self.decoder(embedding))


class WithMapStatistics(nn.Module):
    """The dense head's embedding followed by the mean and standard deviation of each channel
    of the feature map it reads: (B, C, H, W) -> (B, D + 2C).

    The last convolutional map still says how each of its channels is spread over time and
    frequency, which the dense layer's weighted sum blurs; kept beside the embedding it
    lifted cross-validated p@10 and same-song retrieval on held-out music, but not on a
    library's own songs, so it is selectable rather than the default (docs/method.md 7).
    """

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = x.float().flatten(2)
        return torch.cat([self.head(x).float(), stats.mean(2), stats.std(2)], 1)


def inference_encoder(encoder: Encoder, map_statistics: bool = False) -> nn.Sequential:
    """A copy of a trained encoder for embedding only: (B, 1, M, T) -> (B, D), or
    (B, D + 2C) with the last feature map's channel statistics (:class:`WithMapStatistics`).

    In eval mode a batch norm is a fixed affine map per channel, so it folds into the
    convolution or linear layer before it.  That saves a full pass over every feature
    map: the batch norms took 28% of the encoder's inference time (torch profiler,
    bfloat16, one thread), and embedding ran 1.5x faster without them.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    encoder = encoder.eval()
    layers: list[nn.Module] = []
    for layer in encoder.layers:
        if isinstance(layer, ConvLayer):
            conv, norm, _ = layer
            layers += [fuse_conv_bn_eval(conv, norm), nn.ReLU(inplace=True)]
        else:
            head = nn.Sequential(layer.read, fuse_linear_bn_eval(layer.linear, layer.norm))
            layers.append(WithMapStatistics(head) if map_statistics else head)
    return nn.Sequential(*layers).eval()


def training_flops(model: nn.Module, cfg: ModelConfig) -> float:
    """Floating-point operations of one training step per window: 3x the forward pass
    (forward, and backward for inputs and weights), counting multiply-adds as 2."""
    flops = 0.0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal flops
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
            flops += 2.0 * k * output[0].numel()
        elif isinstance(module, nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            flops += 2.0 * k * inputs[0][0].numel()
        elif isinstance(module, nn.Linear):
            flops += 2.0 * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, cfg.n_mels, cfg.window_frames))
    model.train(was_training)
    for h in handles:
        h.remove()
    return 3.0 * flops
