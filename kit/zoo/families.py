"""Per-family facts of the zoo: config numbers for each size, head class, modality and where generic keys go."""

from __future__ import annotations

from dataclasses import dataclass, field

GENERIC_KEYS: tuple[str, ...] = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")


@dataclass(frozen=True)
class Family:
    """How to build one family: config class, head class, config kwargs per size and generic-key targets."""

    name: str
    modality: str
    config_class: str
    head_class: str
    configs: dict[str, dict]
    seq_len: dict[str, int | None]
    generic: dict[str, tuple[str, ...]] = field(default_factory=dict)  # generic key -> dotted config paths
    primary: str | None = None  # sub-config whose layers/hidden size describe() reports

    def targets(self, key: str) -> tuple[str, ...]:
        """Dotted config paths that a generic override key sets (the key itself where the config has it)."""
        return self.generic.get(key, (key,))


def _paths(*subs: str) -> dict[str, tuple[str, ...]]:
    """Generic keys applied to each of the named sub-configs."""
    return {key: tuple(f"{sub}.{key}" for sub in subs) for key in GENERIC_KEYS}


def _encoder_decoder(layers: tuple[str, str], hidden: str, heads: tuple[str, str], ffn: tuple[str, str]) -> dict:
    """Generic keys of an encoder-decoder config whose fields have their own names."""
    return {"num_hidden_layers": layers, "hidden_size": (hidden,), "num_attention_heads": heads,
            "intermediate_size": ffn}


TINY_TEXT = {"vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64}
TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
               "image_size": 32, "patch_size": 8}
TINY_CLIP_TEXT = {**TINY_TEXT, "max_position_embeddings": 32, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
CLIP_B32_TEXT = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                 "num_attention_heads": 8, "max_position_embeddings": 77}
CLIP_B32_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "image_size": 224, "patch_size": 32}
QWEN2_05B = {"vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
             "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
             "rms_norm_eps": 1e-6, "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
             "tie_word_embeddings": True}
TINY_DECODER = {**TINY_TEXT, "num_key_value_heads": 2, "max_position_embeddings": 256}

BERT = Family(
    "bert", "text", "BertConfig", "BertForSequenceClassification",
    {"tiny": {**TINY_TEXT, "max_position_embeddings": 128, "num_labels": 2},
     "base": {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "max_position_embeddings": 512, "num_labels": 2}},  # bert-base-uncased
    {"tiny": 16, "base": 128},
)
T5 = Family(
    "t5", "text2text", "T5Config", "T5ForConditionalGeneration",
    {"tiny": {"vocab_size": 1000, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2,
              "num_heads": 4, "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1},
     "base": {"vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,  # t5-small
              "num_decoder_layers": 6, "num_heads": 8, "feed_forward_proj": "relu", "decoder_start_token_id": 0,
              "pad_token_id": 0, "eos_token_id": 1}},
    {"tiny": 16, "base": 128},
    _encoder_decoder(("num_layers", "num_decoder_layers"), "d_model", ("num_heads",), ("d_ff",)),
)
LLAMA = Family(
    "llama", "text", "LlamaConfig", "LlamaForCausalLM",
    {"tiny": dict(TINY_DECODER),
     "base": {"vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
              "num_attention_heads": 32, "num_key_value_heads": 4, "max_position_embeddings": 2048,
              "rms_norm_eps": 1e-5}},  # TinyLlama-1.1B
    {"tiny": 16, "base": 512},
)
QWEN2 = Family(
    "qwen2", "text", "Qwen2Config", "Qwen2ForCausalLM",
    {"tiny": {**TINY_DECODER, "tie_word_embeddings": True}, "base": dict(QWEN2_05B)},  # Qwen2-0.5B
    {"tiny": 16, "base": 512},
)
VIT = Family(
    "vit", "vision", "ViTConfig", "ViTForImageClassification",
    {"tiny": {**TINY_VISION, "num_labels": 10},
     "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
              "image_size": 224, "patch_size": 16, "num_labels": 1000}},  # vit-base-patch16-224
    {"tiny": None, "base": None},
)
DETR = Family(
    "detr", "detection", "DetrConfig", "DetrForObjectDetection",
    {"tiny": {"d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_queries": 10,
              "num_labels": 5, "use_timm_backbone": False, "use_pretrained_backbone": False,
              "backbone_config": {"model_type": "resnet", "embedding_size": 8, "hidden_sizes": [8, 16, 24, 32],
                                  "depths": [1, 1, 1, 1], "layer_type": "basic", "out_features": ["stage4"]}},
     "base": {"d_model": 256, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 8,  # detr-resnet-50
              "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048, "num_queries": 100,
              "num_labels": 91, "use_timm_backbone": False, "use_pretrained_backbone": False,
              "backbone_config": {"model_type": "resnet", "embedding_size": 64,
                                  "hidden_sizes": [256, 512, 1024, 2048], "depths": [3, 4, 6, 3],
                                  "layer_type": "bottleneck", "out_features": ["stage4"]}}},
    {"tiny": None, "base": None},
    _encoder_decoder(("encoder_layers", "decoder_layers"), "d_model",
                     ("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")),
)
CLIP = Family(
    "clip", "vision-text", "CLIPConfig", "CLIPModel",
    {"tiny": {"text_config": dict(TINY_CLIP_TEXT), "vision_config": dict(TINY_VISION), "projection_dim": 32},
     "base": {"text_config": dict(CLIP_B32_TEXT), "vision_config": dict(CLIP_B32_VISION),  # clip-vit-base-patch32
              "projection_dim": 512}},
    {"tiny": 16, "base": 77},
    _paths("text_config", "vision_config"), "vision_config",
)
WHISPER = Family(
    "whisper", "audio-text", "WhisperConfig", "WhisperForConditionalGeneration",
    {"tiny": {"vocab_size": 1000, "num_mel_bins": 16, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
              "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 64,
              "decoder_ffn_dim": 64, "max_source_positions": 16, "max_target_positions": 64,
              "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1,
              "begin_suppress_tokens": None},
     "base": {"vocab_size": 51865, "num_mel_bins": 80, "d_model": 384, "encoder_layers": 4,  # whisper-tiny
              "decoder_layers": 4, "encoder_attention_heads": 6, "decoder_attention_heads": 6,
              "encoder_ffn_dim": 1536, "decoder_ffn_dim": 1536, "max_source_positions": 1500,
              "max_target_positions": 448, "pad_token_id": 50257, "bos_token_id": 50257, "eos_token_id": 50257,
              "decoder_start_token_id": 50258}},
    {"tiny": None, "base": None},
    _encoder_decoder(("encoder_layers", "decoder_layers"), "d_model",
                     ("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")),
)
WAV2VEC2 = Family(
    "wav2vec2", "audio", "Wav2Vec2Config", "Wav2Vec2ForCTC",
    {"tiny": {"vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 64, "conv_dim": [32, 32], "conv_kernel": [10, 3], "conv_stride": [5, 2],
              "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "layerdrop": 0.0},
     # wav2vec2-base with the 32-letter CTC vocabulary; layerdrop off so training steps do the same work each time
     "base": {"vocab_size": 32, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072, "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
              "conv_stride": [5, 2, 2, 2, 2, 2, 2], "num_conv_pos_embeddings": 128,
              "num_conv_pos_embedding_groups": 16, "layerdrop": 0.0}},
    {"tiny": 1600, "base": 16000},
)
CLAP = Family(
    "clap", "audio-text", "ClapConfig", "ClapModel",
    {"tiny": {"text_config": {**TINY_TEXT, "max_position_embeddings": 40, "pad_token_id": 1},
              "audio_config": {"spec_size": 32, "num_mel_bins": 16, "patch_size": 4, "patch_stride": [4, 4],
                               "window_size": 4, "patch_embeds_hidden_size": 16, "depths": [1, 1],
                               "num_hidden_layers": 2, "num_attention_heads": [2, 4], "hidden_size": 32,
                               "projection_dim": 32},
              "projection_dim": 32},
     "base": {"text_config": {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,  # clap-htsat-unfused
                              "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514},
              "audio_config": {"spec_size": 256, "num_mel_bins": 64, "patch_size": 4, "patch_stride": [4, 4],
                               "window_size": 8, "patch_embeds_hidden_size": 96, "depths": [2, 2, 6, 2],
                               "num_attention_heads": [4, 8, 16, 32], "num_hidden_layers": 4, "hidden_size": 768,
                               "enable_fusion": False},
              "projection_dim": 512}},
    {"tiny": 16, "base": 77},
    _paths("text_config"), "audio_config",  # the audio tower is a Swin: vary it with audio_config.depths etc.
)
LLAVA = Family(
    "llava", "vision-text", "LlavaConfig", "LlavaForConditionalGeneration",
    {"tiny": {"text_config": {**TINY_DECODER, "model_type": "qwen2", "tie_word_embeddings": True},
              "vision_config": {**TINY_VISION, "model_type": "clip_vision_model"}, "tie_word_embeddings": True},
     "base": {"text_config": {**QWEN2_05B, "model_type": "qwen2"},  # Qwen2-0.5B + CLIP ViT-B/32 tower
              "vision_config": {**CLIP_B32_VISION, "model_type": "clip_vision_model"}, "tie_word_embeddings": True}},
    {"tiny": 16, "base": 128},
    _paths("text_config", "vision_config"), "text_config",
)
LLAVA_NEXT = Family(
    "llava-next", "vision-text", "LlavaNextConfig", "LlavaNextForConditionalGeneration",
    LLAVA.configs, {"tiny": 16, "base": 128}, LLAVA.generic, "text_config",
)
XCLIP = Family(
    "xclip", "video-text", "XCLIPConfig", "XCLIPModel",
    {"tiny": {"text_config": dict(TINY_CLIP_TEXT),
              "vision_config": {**TINY_VISION, "num_frames": 2, "mit_hidden_size": 32, "mit_intermediate_size": 64,
                                "mit_num_hidden_layers": 1, "mit_num_attention_heads": 4},
              "projection_dim": 32, "prompt_num_attention_heads": 4},
     "base": {"text_config": dict(CLIP_B32_TEXT),  # xclip-base-patch32
              "vision_config": {**CLIP_B32_VISION, "num_frames": 8, "mit_hidden_size": 512,
                                "mit_intermediate_size": 2048, "mit_num_hidden_layers": 1,
                                "mit_num_attention_heads": 8},
              "projection_dim": 512, "prompt_num_attention_heads": 8}},
    {"tiny": 16, "base": 77},
    _paths("text_config", "vision_config"), "vision_config",
)

REGISTRY: dict[str, Family] = {f.name: f for f in (BERT, T5, LLAMA, QWEN2, VIT, DETR, CLIP, WHISPER, WAV2VEC2, CLAP,
                                                    LLAVA, LLAVA_NEXT, XCLIP)}
MODEL_TYPES: dict[str, str] = {"bert": "bert", "t5": "t5", "llama": "llama", "qwen2": "qwen2", "vit": "vit",
                               "detr": "detr", "clip": "clip", "whisper": "whisper", "wav2vec2": "wav2vec2",
                               "clap": "clap", "llava": "llava", "llava_next": "llava-next", "xclip": "xclip"}
