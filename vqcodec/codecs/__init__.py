"""Encoder–decoders that take any quantizer from :mod:`vqcodec.quantizers`."""

from vqcodec.codecs.audio import AudioCodec, AudioCodecConfig, CodecOutput

__all__ = ["AudioCodec", "AudioCodecConfig", "CodecOutput"]
