"""The paper's constants (Lin, Hosu, Saupe 2020, DeepFL-IQA), one home for each: the defaults of the library
and the scripts read them here."""

# Stage 1: multi-task fine-tuning on the weak labels of KADIS-700k.
STAGE1_LEARNING_RATE = 1e-4          # Adam(0.9, 0.999), fixed
STAGE1_BATCH_SIZE = 64
STAGE1_EPOCHS = 10
STAGE1_VAL_FRACTION = 1 / 7          # 100,000 of KADIS-700k's 700,000 images held out for validation, by content
STAGE1_IMAGE_SIZE = (384, 512)       # height, width: KADIS-700k's native 512x384
