"""An MLThon strategy that sends a telegram message on its ``Notify`` command (the secrets scan
uses it to make the bot token really travel): the demo strategy, which with a huge
``start_after`` never starts its order script."""
from tradebus.mlthon.demo import DemoStrategy


class TelegramOnCommand(DemoStrategy):
    def on_framework_connected(self, env):
        super().on_framework_connected(env)
        env.add_cmd_hook("Notify", self.on_notify)

    def on_notify(self, params):
        self.env.publish_telegram("security scan: " + " ".join(params))
