"""Characters: a person trained once at a provider and reused in videos.

``service`` (the :class:`~reelbot.characters.service.Characters` service the cog calls),
``photos`` (taking photos and zips in), ``names``, ``panel`` (what members read),
``model`` (the stored training request) and ``kind`` (the training job kind).
"""
