"""Personal data: masking what analysts (and, when enabled, training) see, forgetting one
item everywhere, and retention of old items' texts.

- masking: e-mail addresses, phone numbers, payment card numbers, IBANs and the admins'
  own patterns (MaskPattern), replaced by their kind ("[email]", "[phone]"...), on the
  review card (`|masked`) and, with TRIAGE_MASK_TRAINING, in stored training examples
  (`manage.py mask_training` for those written before).
- forget: `manage.py forget EXTERNAL_ID...` removes an item's text and metadata from every
  table and leaves a tombstone (erasure.py lists where the copies are).
- retention: `manage.py prune --older-than 180d` (and the beat entry when
  TRIAGE_RETENTION_DAYS is set) does the same for old, decided items, and also drops
  their predictions.
"""
