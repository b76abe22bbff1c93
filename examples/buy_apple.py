"""The book's shopping examples (ch. 5.4): forward and backward through Mul and Add layers.

Run:  python examples/buy_apple.py
"""

from bp_xp import AddLayer, MulLayer


def buy_apple() -> None:
    apple, apple_num, tax = 100, 2, 1.1
    mul_apple_layer, mul_tax_layer = MulLayer(), MulLayer()

    apple_price = mul_apple_layer.forward(apple, apple_num)
    price = mul_tax_layer.forward(apple_price, tax)

    dprice = 1
    dapple_price, dtax = mul_tax_layer.backward(dprice)
    dapple, dapple_num = mul_apple_layer.backward(dapple_price)

    print("apple example")
    print(f"  price: {round(price)}")
    print(f"  dApple: {dapple:g}")
    print(f"  dApple_num: {round(dapple_num)}")
    print(f"  dTax: {dtax:g}")


def buy_apple_orange() -> None:
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple_layer, mul_orange_layer = MulLayer(), MulLayer()
    add_apple_orange_layer, mul_tax_layer = AddLayer(), MulLayer()

    apple_price = mul_apple_layer.forward(apple, apple_num)
    orange_price = mul_orange_layer.forward(orange, orange_num)
    all_price = add_apple_orange_layer.forward(apple_price, orange_price)
    price = mul_tax_layer.forward(all_price, tax)

    dprice = 1
    dall_price, dtax = mul_tax_layer.backward(dprice)
    dapple_price, dorange_price = add_apple_orange_layer.backward(dall_price)
    dorange, dorange_num = mul_orange_layer.backward(dorange_price)
    dapple, dapple_num = mul_apple_layer.backward(dapple_price)

    print("apple and orange example")
    print(f"  price: {round(price)}")
    print(f"  dApple_num: {round(dapple_num)}, dApple: {dapple:g}")
    print(f"  dOrange: {dorange:g}, dOrange_num: {round(dorange_num)}")
    print(f"  dTax: {dtax:g}")


if __name__ == "__main__":
    buy_apple()
    buy_apple_orange()
