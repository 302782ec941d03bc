"""The paper's constants (Lin, Hosu, Saupe 2020, DeepFL-IQA), one home for each: the defaults of the library
and the scripts read them here."""

# The MLSP features: global average pooling of InceptionResNetV2's 43 inception-block outputs, concatenated.
MLSP_DIM = 16928

# Stage 1: multi-task fine-tuning on the weak labels of KADIS-700k.
STAGE1_LEARNING_RATE = 1e-4  # Adam(0.9, 0.999), fixed
STAGE1_BATCH_SIZE = 64
STAGE1_EPOCHS = 10
STAGE1_VAL_FRACTION = 1 / 7  # 100,000 of KADIS-700k's 700,000 images held out for validation, by content
STAGE1_IMAGE_SIZE = (384, 512)  # height, width: KADIS-700k's native 512x384

# The stage-2 protocols deepfl runs: the paper's (default) and the authors' demo notebook's.
STAGE2_PROTOCOLS = ("paper", "authors_demo")

# Stage 2, the paper's protocol: MLP head (2048-1024-256, dropout 0.25/0.25/0.5) on MLSP features, targets
# z-scored on the training rows, random 60/20/20 content splits, learning rate chosen on validation.
STAGE2_HIDDEN = (2048, 1024, 256)
STAGE2_DROPOUT = (0.25, 0.25, 0.5)


def stage2_dropout(layers: int) -> tuple[float, ...]:
    """The paper's dropout pattern for a head of `layers` hidden layers: 0.25 after each but the last, 0.5 after
    the last (`STAGE2_DROPOUT` for its three)."""
    return (0.25,) * (layers - 1) + (0.5,)


STAGE2_EPOCHS = 30
STAGE2_BATCH_SIZE = 128
STAGE2_LEARNING_RATES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
STAGE2_NUM_SPLITS = 10
STAGE2_SPLIT_RATIOS = (0.6, 0.2, 0.2)

# Stage 2 as the authors' published demo notebook runs it (KADIS-trained weights, KADID-10k): the same head,
# a fixed learning rate, raw DMOS targets (no normalisation), 5 random 60/20/20 content splits, batch 128,
# 30 epochs, the best-validation-loss checkpoint.
AUTHORS_DEMO_LEARNING_RATE = 1e-3
AUTHORS_DEMO_NUM_SPLITS = 5
AUTHORS_DEMO_EPOCHS = 30
AUTHORS_DEMO_BATCH_SIZE = 128

# Reported results: within-data-set median SROCC / PLCC of DeepFL-IQA (the paper's table), by data set key.
WITHIN_SROCC_PLCC = {
    "kadid10k": (0.936, 0.938),
    "live": (0.972, 0.978),
    "csiq": (0.930, 0.946),
    "tid2013": (0.858, 0.876),
    "koniq10k": (0.877, 0.887),
    "clive": (0.734, 0.769),
}
# What the authors' demo notebook printed on KADID-10k (per-split SROCC; median 0.926).
AUTHORS_DEMO_KADID10K_SROCC = (0.937, 0.925, 0.926, 0.921, 0.942)
