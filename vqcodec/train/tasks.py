"""What differs between modalities in training: the model, the loss, the data and the dev
metrics. The loop (:mod:`vqcodec.train.loop`) is the same for all of them."""

from __future__ import annotations

from torch import Tensor, nn
from torch.utils.data import Dataset

from vqcodec.codecs.audio import AudioCodec
from vqcodec.codecs.image import ImageCodec
from vqcodec.train.config import ImageTrainConfig, TrainConfig
from vqcodec.train.data import AudioFolder, ImageFolder
from vqcodec.train.discriminators import MultiScaleSTFTDiscriminator, PatchDiscriminator
from vqcodec.train.losses import AudioReconstructionLoss, ImageReconstructionLoss


class AudioTask:
    """Audio codecs: waveform crops, mel/STFT/waveform losses, dev mel distance."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def model(self) -> nn.Module:
        return AudioCodec(self.config.model, name=self.config.model_name)

    def loss(self) -> nn.Module:
        return AudioReconstructionLoss(self.config.model.sample_rate, self.config.loss)

    def discriminator(self) -> nn.Module:
        return MultiScaleSTFTDiscriminator(filters=self.config.adversarial.width)

    def dataset(self, roots: tuple[str, ...], train: bool) -> Dataset:
        data = self.config.data
        return AudioFolder(
            roots, self.config.model.sample_rate, data.segment_seconds, train, data.exclude,
            cache=train and data.cache_audio,
        )  # fmt: skip

    def dev_metrics(self, codec: AudioCodec, loss: nn.Module, x: Tensor, x_hat: Tensor):
        lowest = codec.decode(codec.encode(x, num_levels=1))[..., : x.shape[-1]]
        return {"mel_full": loss.mel(x_hat, x), "mel_lowest": loss.mel(lowest, x)}


class ImageTask:
    """Image codecs: RGB crops, L1/MS-SSIM losses, dev PSNR and MS-SSIM at full and lowest rate."""

    def __init__(self, config: ImageTrainConfig) -> None:
        self.config = config

    def model(self) -> nn.Module:
        return ImageCodec(self.config.model, name=self.config.model_name)

    def loss(self) -> nn.Module:
        return ImageReconstructionLoss(self.config.loss)

    def discriminator(self) -> nn.Module:
        return PatchDiscriminator(width=self.config.adversarial.width)

    def dataset(self, roots: tuple[str, ...], train: bool) -> Dataset:
        return ImageFolder(roots, self.config.data.crop, train, self.config.data.exclude)

    def dev_metrics(self, codec: ImageCodec, loss: nn.Module, x: Tensor, x_hat: Tensor):
        from pytorch_msssim import ms_ssim

        lowest = codec.decode(codec.encode(x, num_levels=1))[..., : x.shape[-2], : x.shape[-1]]
        values = {}
        for name, y in (("full", x_hat.clamp(0, 1)), ("lowest", lowest)):
            mse = (y.float() - x.float()).pow(2).mean()
            values[f"psnr_{name}"] = -10 * mse.clamp_min(1e-10).log10()
            if min(x.shape[-2:]) > 160:  # MS-SSIM's five scales need 161 pixels
                values[f"ms_ssim_{name}"] = ms_ssim(y.float(), x.float(), data_range=1.0)
        return values


def task_for(config: TrainConfig | ImageTrainConfig) -> AudioTask | ImageTask:
    """The task that trains ``config``'s kind of codec."""
    return ImageTask(config) if config.kind == "image" else AudioTask(config)
