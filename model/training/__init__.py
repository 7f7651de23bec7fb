"""Training pieces beyond the loop: photo-view augmentation, the teacher and distillation.

model.train strings them together; nothing in app/ imports them.
"""
