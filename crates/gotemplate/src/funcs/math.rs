//! Sprig's arithmetic: int64 math through cast, float math through shopspring/decimal.

use super::args;
use super::conv::{to_float64, to_int64};
use super::crypto::random_below;
use super::gofmt::format_float;
use super::{Func, FuncError};
use crate::value::Value;

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("add1", add1),
        ("add", add),
        ("sub", sub),
        ("div", div),
        ("mod", modulo),
        ("mul", mul),
        ("randInt", rand_int),
        ("add1f", add1f),
        ("addf", addf),
        ("subf", subf),
        ("divf", divf),
        ("mulf", mulf),
        ("biggest", max),
        ("max", max),
        ("min", min),
        ("maxf", maxf),
        ("minf", minf),
        ("ceil", ceil),
        ("floor", floor),
        ("round", round),
    ]
}

const DIVIDE_BY_ZERO: &str = "runtime error: integer divide by zero";

fn add1(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("add1", args, 1)?;
    Ok(Value::Int(to_int64(&args[0]).wrapping_add(1)))
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Int(
        args.iter()
            .fold(0i64, |sum, v| sum.wrapping_add(to_int64(v))),
    ))
}

fn sub(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("sub", args, 2)?;
    Ok(Value::Int(
        to_int64(&args[0]).wrapping_sub(to_int64(&args[1])),
    ))
}

fn div(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("div", args, 2)?;
    let divisor = to_int64(&args[1]);
    if divisor == 0 {
        return Err(DIVIDE_BY_ZERO.to_string());
    }
    Ok(Value::Int(to_int64(&args[0]).wrapping_div(divisor)))
}

fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("mod", args, 2)?;
    let divisor = to_int64(&args[1]);
    if divisor == 0 {
        return Err(DIVIDE_BY_ZERO.to_string());
    }
    Ok(Value::Int(to_int64(&args[0]).wrapping_rem(divisor)))
}

fn mul(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("mul", args, 1)?;
    Ok(Value::Int(
        args[1..].iter().fold(to_int64(&args[0]), |product, v| {
            product.wrapping_mul(to_int64(v))
        }),
    ))
}

fn rand_int(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("randInt", args, 2)?;
    let min = args::int(args, 0)?;
    let max = args::int(args, 1)?;
    let span = max.wrapping_sub(min);
    if span <= 0 {
        return Err("invalid argument to Intn".to_string());
    }
    Ok(Value::Int(
        min.wrapping_add(random_below(span as u64)? as i64),
    ))
}

/// A decimal number `mantissa × 10^exponent` (shopspring/decimal's model).
#[derive(Clone, Copy, Debug)]
struct Decimal {
    mantissa: i128,
    exponent: i32,
}

impl Decimal {
    /// `decimal.NewFromFloat`: the shortest decimal that round-trips to `f`.
    fn from_float(f: f64) -> Option<Decimal> {
        if !f.is_finite() {
            return None;
        }
        if f == 0.0 {
            return Some(Decimal {
                mantissa: 0,
                exponent: 0,
            });
        }
        let text = format_float(f, 'e', None);
        let (mantissa, exponent) = text.split_once('e')?;
        let negative = mantissa.starts_with('-');
        let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
        let exponent: i32 = exponent.parse().ok()?;
        let value: i128 = digits.parse().ok()?;
        let exponent = exponent - (digits.len() as i32 - 1);
        Some(Decimal {
            mantissa: if negative { -value } else { value },
            exponent,
        })
    }

    fn rescale(self, exponent: i32) -> Option<Decimal> {
        if exponent >= self.exponent {
            return Some(self);
        }
        let factor = 10i128.checked_pow((self.exponent - exponent) as u32)?;
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(factor)?,
            exponent,
        })
    }

    fn add(self, other: Decimal) -> Option<Decimal> {
        let exponent = self.exponent.min(other.exponent);
        let a = self.rescale(exponent)?;
        let b = other.rescale(exponent)?;
        Some(Decimal {
            mantissa: a.mantissa.checked_add(b.mantissa)?,
            exponent,
        })
    }

    fn neg(self) -> Decimal {
        Decimal {
            mantissa: -self.mantissa,
            exponent: self.exponent,
        }
    }

    fn mul(self, other: Decimal) -> Option<Decimal> {
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            exponent: self.exponent + other.exponent,
        })
    }

    /// `d.Div(d2)`: the quotient rounded half away from zero to 16 decimal places.
    fn div(self, other: Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        // q = (a / b) × 10^(ea − eb); scaled = q × 10^16.
        let shift = self.exponent - other.exponent + 16;
        let (numerator, denominator) = if shift >= 0 {
            (
                self.mantissa
                    .checked_mul(10i128.checked_pow(shift as u32)?)?,
                other.mantissa,
            )
        } else {
            (
                self.mantissa,
                other
                    .mantissa
                    .checked_mul(10i128.checked_pow((-shift) as u32)?)?,
            )
        };
        let quotient = numerator / denominator;
        let remainder = numerator % denominator;
        let rounded = if remainder.unsigned_abs() * 2 >= denominator.unsigned_abs() {
            if (numerator < 0) != (denominator < 0) {
                quotient - 1
            } else {
                quotient + 1
            }
        } else {
            quotient
        };
        Some(Decimal {
            mantissa: rounded,
            exponent: -16,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.mantissa, self.exponent)
            .parse()
            .unwrap_or(f64::NAN)
    }
}

/// Sprig's `execDecimalOp`, falling back to float math where the decimal would not fit.
fn decimal_op(
    first: &Value,
    rest: &[Value],
    op: fn(Decimal, Decimal) -> Option<Decimal>,
    float_op: fn(f64, f64) -> f64,
) -> f64 {
    let mut float_result = to_float64(first);
    let mut result = Decimal::from_float(float_result);
    for value in rest {
        let x = to_float64(value);
        float_result = float_op(float_result, x);
        result = match (result, Decimal::from_float(x)) {
            (Some(a), Some(b)) => op(a, b),
            _ => None,
        };
    }
    match result {
        Some(decimal) => decimal.to_f64(),
        None => float_result,
    }
}

fn add1f(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("add1f", args, 1)?;
    Ok(Value::Float(decimal_op(
        &args[0],
        &[Value::Int(1)],
        Decimal::add,
        |a, b| a + b,
    )))
}

fn addf(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Float(decimal_op(
        &Value::Float(0.0),
        args,
        Decimal::add,
        |a, b| a + b,
    )))
}

fn subf(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("subf", args, 1)?;
    Ok(Value::Float(decimal_op(
        &args[0],
        &args[1..],
        |a, b| a.add(b.neg()),
        |a, b| a - b,
    )))
}

fn mulf(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("mulf", args, 1)?;
    Ok(Value::Float(decimal_op(
        &args[0],
        &args[1..],
        Decimal::mul,
        |a, b| a * b,
    )))
}

fn divf(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("divf", args, 1)?;
    if args[1..].iter().any(|v| to_float64(v) == 0.0) {
        return Err("decimal division by 0".to_string());
    }
    Ok(Value::Float(decimal_op(
        &args[0],
        &args[1..],
        Decimal::div,
        |a, b| a / b,
    )))
}

fn max(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("max", args, 1)?;
    Ok(Value::Int(args.iter().map(to_int64).max().unwrap_or(0)))
}

fn min(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("min", args, 1)?;
    Ok(Value::Int(args.iter().map(to_int64).min().unwrap_or(0)))
}

/// Go's `math.Max` (NaN wins).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn maxf(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("maxf", args, 1)?;
    Ok(Value::Float(
        args[1..]
            .iter()
            .fold(to_float64(&args[0]), |m, v| go_max(m, to_float64(v))),
    ))
}

fn minf(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("minf", args, 1)?;
    Ok(Value::Float(
        args[1..]
            .iter()
            .fold(to_float64(&args[0]), |m, v| go_min(m, to_float64(v))),
    ))
}

fn ceil(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("ceil", args, 1)?;
    Ok(Value::Float(to_float64(&args[0]).ceil()))
}

fn floor(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("floor", args, 1)?;
    Ok(Value::Float(to_float64(&args[0]).floor()))
}

fn round(args: &[Value]) -> Result<Value, FuncError> {
    args::at_least("round", args, 2)?;
    let value = to_float64(&args[0]);
    let places = args::int(args, 1)? as f64;
    let round_on = match args.get(2) {
        Some(_) => args::float(args, 2)?,
        None => 0.5,
    };
    let pow = 10f64.powf(places);
    let digit = pow * value;
    let fraction = digit - digit.trunc();
    let rounded = if fraction >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(rounded / pow))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: Result<Value, FuncError>) -> f64 {
        match v {
            Ok(Value::Float(f)) => f,
            other => panic!("not a float: {other:?}"),
        }
    }

    #[test]
    fn decimal_math_avoids_binary_noise() {
        assert_eq!(float(addf(&[Value::Float(0.1), Value::Float(0.2)])), 0.3);
        assert_eq!(float(mulf(&[Value::Float(1.1), Value::Int(3)])), 3.3);
        assert_eq!(float(subf(&[Value::Float(1.0), Value::Float(0.9)])), 0.1);
        assert_eq!(
            float(divf(&[Value::Int(10), Value::Int(3)])),
            3.3333333333333335
        );
        assert_eq!(float(round(&[Value::Float(1.23456), Value::Int(2)])), 1.23);
    }

    #[test]
    fn integer_math_uses_cast() {
        assert!(matches!(
            add(&[Value::Int(1), Value::from("2"), Value::Float(3.7)]),
            Ok(Value::Int(6))
        ));
        assert!(matches!(
            div(&[Value::Int(7), Value::Int(2)]),
            Ok(Value::Int(3))
        ));
        assert!(div(&[Value::Int(7), Value::Int(0)]).is_err());
        assert!(matches!(
            max(&[Value::Int(1), Value::Int(9), Value::Int(3)]),
            Ok(Value::Int(9))
        ));
    }
}
