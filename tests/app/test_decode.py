import asyncio

import pytest

from app.decode import DecodeBudget


def test_budget_serves_in_order_and_lets_an_oversized_image_run_alone() -> None:
    async def scenario() -> list[str]:
        budget, order = DecodeBudget(100), []

        async def decode(name: str, size: int, seconds: float) -> None:
            taken = await budget.take(size)
            order.append(f"{name}+")
            assert budget.held <= budget.limit
            await asyncio.sleep(seconds)
            order.append(f"{name}-")
            budget.give_back(taken)

        await asyncio.gather(
            decode("a", 60, 0.02), decode("huge", 500, 0.02), decode("b", 10, 0.01)
        )
        assert budget.held == 0
        return order

    # b fits beside a but waits its turn behind huge, which runs once a has given back.
    assert asyncio.run(scenario()) == ["a+", "a-", "huge+", "huge-", "b+", "b-"]


def test_a_waiter_that_gives_up_takes_nothing() -> None:
    async def scenario() -> int:
        budget = DecodeBudget(100)
        first = await budget.take(80)
        waiter = asyncio.ensure_future(budget.take(50))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        budget.give_back(first)
        assert await budget.take(100) == 100
        return budget.held

    assert asyncio.run(scenario()) == 100
