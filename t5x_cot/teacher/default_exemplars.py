"""The package's own default few-shot exemplars, one Q:/A: text per task.

Same format as an exemplar file's "prompt" value: blocks "Q: <question>" then
"A: <rationale> The answer is <answer>.", parsed by `t5x_cot.teacher.prompts.parse_exemplars`.
"""
from __future__ import annotations

DEFAULT_EXEMPLARS: dict[str, str] = {
    "gsm8k": """\
Q: A baker makes 24 muffins in the morning and 18 in the afternoon. She sells 30 of them. How many muffins are left?
A: The baker makes 24 + 18 = 42 muffins. After selling 30, she has 42 - 30 = 12 muffins left. The answer is 12.
Q: Tom reads 15 pages every day. How many pages does he read in 2 weeks?
A: Two weeks have 2 * 7 = 14 days. Tom reads 15 * 14 = 210 pages. The answer is 210.
Q: A box holds 6 eggs. Maria needs 50 eggs for a party. How many boxes must she buy?
A: 50 / 6 = 8 with 2 eggs left over, so 8 boxes are not enough. She must buy 8 + 1 = 9 boxes. The answer is 9.
Q: Sam buys 3 notebooks at $4 each and a pen for $2. He pays with a $20 bill. How much change does he get?
A: The notebooks cost 3 * 4 = 12 dollars. With the pen, he spends 12 + 2 = 14 dollars. His change is 20 - 14 = 6 dollars. The answer is 6.
""",
    "strategyqa": """\
Q: Could a penguin survive a summer day in the Sahara without help?
A: Penguins are adapted to cold climates. Summer days in the Sahara are extremely hot and dry. Thus, a penguin could not survive there without help. The answer is no.
Q: Is a cup of water heavier than a cup of feathers?
A: Water is far denser than loosely packed feathers. The same volume of a denser material weighs more. Thus, a cup of water is heavier. The answer is yes.
Q: Would a chess game fit into a single minute of play?
A: Fast "bullet" chess games give each player one minute or less. Such games can finish within a minute. Thus, a chess game can fit into a single minute. The answer is yes.
Q: Did the Roman Empire use smartphones to send messages?
A: The Roman Empire ended in the west in the fifth century. Smartphones were invented in the twentieth and twenty-first centuries. Thus, the Romans could not use smartphones. The answer is no.
""",
    "coinflip": """\
Q: A coin is heads up. Alma flips the coin. Bruno does not flip the coin. Is the coin still heads up?
A: The coin was flipped by Alma. So the coin was flipped 1 time, which is an odd number. The coin started heads up, so after an odd number of flips, it will be tails up. The answer is no.
Q: A coin is heads up. Celia does not flip the coin. Dario does not flip the coin. Is the coin still heads up?
A: The coin was flipped by no one. So the coin was flipped 0 times, which is an even number. The coin started heads up, so after an even number of flips, it will still be heads up. The answer is yes.
Q: A coin is heads up. Esme flips the coin. Farid flips the coin. Is the coin still heads up?
A: The coin was flipped by Esme and Farid. So the coin was flipped 2 times, which is an even number. The coin started heads up, so after an even number of flips, it will still be heads up. The answer is yes.
Q: A coin is heads up. Greta does not flip the coin. Hugo flips the coin. Is the coin still heads up?
A: The coin was flipped by Hugo. So the coin was flipped 1 time, which is an odd number. The coin started heads up, so after an odd number of flips, it will be tails up. The answer is no.
""",
}
