"""Group-chat robots (DESIGN A12): WeCom, DingTalk and Feishu webhooks, one plugin each."""

from broadcaster.channels.chats.base import ChatChannel, ChatConfig, ChatContext, ChatJob, RateWindow

__all__ = ["ChatChannel", "ChatConfig", "ChatContext", "ChatJob", "RateWindow", "build_chats", "chat_types"]


def chat_types() -> dict[str, type[ChatChannel]]:
    """Every installed robot type (the ``broadcaster.chats`` entry points), by name."""
    from broadcaster import plugins

    return plugins.available("chats")


def build_chats(configs: dict[str, ChatConfig], ctx: ChatContext) -> dict[str, ChatChannel]:
    """One channel per configured chat, by chat id."""
    types = chat_types()
    return {cid: types[c.type](c, ctx) for cid, c in configs.items()}
